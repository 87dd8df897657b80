"""The vector signal on PostgreSQL (``memory.store.postgres.vectors``), on a real PostgreSQL 18 with pgvector.

The HNSW index answers for one cube at a time and only for searchable memories, with the
cosine the SQLite engine computes, and its top 10 is the exact scan's on a clustered cube.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest

from memory.store.postgres import EMBEDDING_DIM
from memory.store.postgres.vectors import PostgresVectors, vector_text

pytestmark = pytest.mark.postgres
NOW = "2026-12-07T12:00:00Z"


@pytest.fixture
def conn(postgres_conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    return postgres_conn


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def add_cube(conn: psycopg.Connection[Any], name: str, vectors: np.ndarray, status: str = "active") -> PostgresVectors:
    row = conn.execute("INSERT INTO cubes (name) VALUES (%s) RETURNING id", (name,)).fetchone()
    assert row is not None
    cube = int(row[0])
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO memories (cube, id, text, type, status, created_at, updated_at, content_hash, seq) "
            "VALUES (%s, %s, %s, 'fact', %s, %s, %s, %s, 1)",
            [(cube, f"{name}-{i}", f"memory {i}", status, NOW, NOW, f"{name}-{i}") for i in range(len(vectors))],
        )
    rows = conn.execute("SELECT row_id FROM memories WHERE cube = %s ORDER BY row_id", (cube,)).fetchall()
    index = PostgresVectors(conn, cube)
    with conn.transaction():
        index.store(conn, [(int(row_id), vector) for (row_id,), vector in zip(rows, vectors, strict=True)])
    return index


def test_nearest_is_ordered_by_the_cosine_the_sqlite_engine_computes(conn: psycopg.Connection[Any]) -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng.standard_normal((50, EMBEDDING_DIM)))
    index = add_cube(conn, "team", vectors)
    query = unit(vectors[7] + 0.3 * rng.standard_normal(EMBEDDING_DIM) / np.sqrt(EMBEDDING_DIM))
    found = index.nearest(query, 5)
    cosines = vectors @ query
    assert [c for _, c in found] == sorted((c for _, c in found), reverse=True)
    first = conn.execute("SELECT min(row_id) FROM memories WHERE cube = %s", (index.cube_id,)).fetchone()
    assert first is not None
    first_row = int(first[0])
    assert [row_id - first_row for row_id, _ in found] == list(np.argsort(-cosines)[:5])
    assert [c for _, c in found] == pytest.approx(sorted(cosines, reverse=True)[:5], abs=1e-5)


def test_one_cube_never_answers_with_another_cubes_memories(conn: psycopg.Connection[Any]) -> None:
    rng = np.random.default_rng(4)
    ours = add_cube(conn, "ours", unit(rng.standard_normal((20, EMBEDDING_DIM))))
    theirs_vectors = unit(rng.standard_normal((20, EMBEDDING_DIM)))
    add_cube(conn, "theirs", theirs_vectors)
    found = ours.nearest(theirs_vectors[0], 10)  # their memory is the exact match; ours must not see it
    owners = conn.execute("SELECT DISTINCT cube FROM memories WHERE row_id = ANY(%s)", ([r for r, _ in found],)).fetchall()
    assert len(found) == 10 and owners == [(ours.cube_id,)]


def test_archived_only_when_asked_and_deleted_never(conn: psycopg.Connection[Any]) -> None:
    rng = np.random.default_rng(5)
    vectors = unit(rng.standard_normal((3, EMBEDDING_DIM)))
    index = add_cube(conn, "team", vectors)
    rows = [r for (r,) in conn.execute("SELECT row_id FROM memories WHERE cube = %s ORDER BY row_id", (index.cube_id,))]
    conn.execute("UPDATE memories SET status = 'archived' WHERE row_id = %s", (rows[0],))
    conn.execute("UPDATE memories SET status = 'deleted' WHERE row_id = %s", (rows[1],))
    assert [r for r, _ in index.nearest(vectors[0], 3)] == [rows[2]]
    assert {r for r, _ in index.nearest(vectors[0], 3, include_archived=True)} == {rows[0], rows[2]}


def test_hnsw_top_10_is_the_exact_scans_on_a_clustered_cube(conn: psycopg.Connection[Any]) -> None:
    rng = np.random.default_rng(6)
    centres = unit(rng.standard_normal((10, EMBEDDING_DIM)))
    vectors = unit(centres[rng.integers(0, 10, 2000)] + 0.8 * rng.standard_normal((2000, EMBEDDING_DIM)) / np.sqrt(EMBEDDING_DIM))
    index = add_cube(conn, "team", vectors)
    recalls = []
    for query in vectors[rng.integers(0, 2000, 20)]:
        approximate = {r for r, _ in index.nearest(query, 10)}
        exact = {r for r, _ in index.exact(query, 10)}
        recalls.append(len(approximate & exact) / 10)
    assert np.mean(recalls) >= 0.95, recalls


def test_a_vector_goes_to_text_and_back_unchanged() -> None:
    vector = np.random.default_rng(8).standard_normal(EMBEDDING_DIM).astype(np.float32)
    back = np.array([float(x) for x in vector_text(vector)[1:-1].split(",")], dtype=np.float32)
    assert np.array_equal(back, vector)
