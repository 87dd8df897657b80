"""The PostgreSQL engine's schema on a real PostgreSQL 18 with pgvector (memory.store.postgres).

Each test gets a new database (``postgres_database``) on the session's server and runs the
migrations itself: search by vector and by word, the change log's NOTIFY, values that look
like SQL, and the one-line errors for a server or role that cannot hold the schema.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import conninfo, sql
from psycopg.types.json import Jsonb

from memory.errors import Unavailable
from memory.store.postgres import CHANGES_CHANNEL, EMBEDDING_DIM, SCHEMA_VERSION, migrate
from memory.store.postgres.schema import create_extension

pytestmark = pytest.mark.postgres

NOW = "2026-12-07T12:00:00Z"


@pytest.fixture
def conn(postgres_conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    return postgres_conn


def add_cube(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("INSERT INTO cubes (name) VALUES (%s) RETURNING id", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def add_memory(
    conn: psycopg.Connection[Any],
    cube: int,
    memory_id: str,
    text: str,
    *,
    embedding: np.ndarray | None = None,
    tags: list[str] | None = None,
    **columns: Any,
) -> None:
    """One memory row with the fields the schema requires; every value bound."""
    values: dict[str, Any] = {
        "cube": cube,
        "id": memory_id,
        "text": text,
        "type": "fact",
        "created_at": NOW,
        "updated_at": NOW,
        "content_hash": uuid.uuid4().hex,
        "seq": 1,
        "tags": Jsonb(tags or []),
        "embedding": None if embedding is None else vector_literal(embedding),
        **columns,
    }
    statement = sql.SQL("INSERT INTO memories ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder(name) for name in values),
    )
    conn.execute(statement, values)


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form, '[x,y,...]', which the server casts to ``vector`` on insert."""
    return "[" + ",".join(f"{x:.8f}" for x in vector) + "]"


def test_migrate_creates_the_schema_once_and_a_second_run_changes_nothing(postgres_database: str) -> None:
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        assert migrate(connection) == 0
        versions = connection.execute("SELECT version, applied_at FROM schema_version ORDER BY version").fetchall()
        objects = connection.execute(
            "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY relname"
        ).fetchall()
        tables = {name for name, kind in objects if kind == "r"}
        assert [version for version, _ in versions] == list(range(1, SCHEMA_VERSION + 1))
        assert {"cubes", "memories", "memory_versions", "memory_entities", "memory_relations", "change_log"} <= tables
        assert ("memories_embedding", "i") in objects

        assert migrate(connection) == SCHEMA_VERSION
        assert connection.execute("SELECT version, applied_at FROM schema_version ORDER BY version").fetchall() == versions
        assert (
            connection.execute(
                "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY relname"
            ).fetchall()
            == objects
        )


def test_hnsw_returns_the_nearest_memories_in_order(conn: psycopg.Connection[Any]) -> None:
    rng = np.random.default_rng(28)
    vectors = rng.standard_normal((200, EMBEDDING_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cube = add_cube(conn, "personal")
    with conn.transaction():
        for i, vector in enumerate(vectors):
            add_memory(conn, cube, f"m{i}", f"memory {i}", embedding=vector)
    assert conn.execute("SELECT n FROM memory_status_counts WHERE cube = %s AND status = 'active'", (cube,)).fetchone() == (200,)

    conn.execute("ANALYZE memories")
    conn.execute("SET hnsw.ef_search = 100")
    # 200 rows: the planner would rather read them all and sort (or, given a cube to filter by,
    # read that cube's rows through its index and sort): no cube filter, and no sequential scan.
    conn.execute("SET enable_seqscan = off")
    query = "SELECT id, embedding <=> %s::vector FROM memories ORDER BY embedding <=> %s::vector LIMIT 10"
    queries = rng.standard_normal((20, EMBEDDING_DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    plan = [row[0] for row in conn.execute("EXPLAIN " + query, (vector_literal(queries[0]),) * 2)]
    scans = [line.strip() for line in plan if "Scan" in line]
    assert any("Index Scan using memories_embedding" in line for line in scans), scans

    recalls = []
    for q in queries:
        literal = vector_literal(q)
        rows = conn.execute(query, (literal, literal)).fetchall()
        distances = [distance for _, distance in rows]
        exact_distances = 1.0 - vectors @ q
        exact_top = {f"m{i}" for i in np.argsort(exact_distances)[:10]}
        assert distances == sorted(distances)
        for memory_id, distance in rows:
            assert distance == pytest.approx(exact_distances[int(memory_id[1:])], abs=1e-5)
        recalls.append(len(exact_top & {memory_id for memory_id, _ in rows}) / 10)
    recall = float(np.mean(recalls))
    print(f"HNSW recall@10 over {len(queries)} queries, 200 vectors, ef_search=100: {recall:.3f}")
    assert recall >= 0.9


def test_status_counts_follow_inserts_status_changes_and_deletes(conn: psycopg.Connection[Any]) -> None:
    """Kept per statement (schema v4): one statement of many rows, and single-row ones, both counted."""
    cube, other = add_cube(conn, "team"), add_cube(conn, "other")
    with conn.transaction():
        for i in range(5):
            add_memory(conn, cube, f"m{i}", f"memory {i}")
        add_memory(conn, other, "x", "another cube's memory")

    def counts(of: int) -> dict[str, int]:
        rows = conn.execute("SELECT status, n FROM memory_status_counts WHERE cube = %s AND n <> 0", (of,)).fetchall()
        return dict(rows)

    assert counts(cube) == {"active": 5} and counts(other) == {"active": 1}
    conn.execute("UPDATE memories SET status = 'archived' WHERE cube = %s AND id IN ('m0', 'm1')", (cube,))
    conn.execute("UPDATE memories SET access_count = access_count + 1 WHERE cube = %s", (cube,))  # no status moves
    assert counts(cube) == {"active": 3, "archived": 2}
    conn.execute("UPDATE memories SET status = 'deleted' WHERE cube = %s AND id = 'm0'", (cube,))
    conn.execute("DELETE FROM memories WHERE cube = %s AND id IN ('m2', 'm3')", (cube,))
    assert counts(cube) == {"active": 1, "archived": 1, "deleted": 1}
    assert counts(other) == {"active": 1}
    real = dict(conn.execute("SELECT status, count(*) FROM memories WHERE cube = %s GROUP BY status", (cube,)).fetchall())
    assert counts(cube) == real


def test_keyword_search_finds_a_memory_by_a_stemmed_word(conn: psycopg.Connection[Any]) -> None:
    cube = add_cube(conn, "personal")
    add_memory(conn, cube, "run", "Alice was running marathons in Berlin", tags=["training"])
    add_memory(conn, cube, "cook", "Bob cooked pasta for dinner")
    search = "SELECT id FROM memories WHERE cube = %s AND search @@ websearch_to_tsquery('english', %s) ORDER BY id"

    assert conn.execute(search, (cube, "runs marathon")).fetchall() == [("run",)]
    assert conn.execute(search, (cube, "trained")).fetchall() == [("run",)]  # a tag's word, stemmed too
    assert conn.execute(search, (cube, "marathon -Berlin")).fetchall() == []

    conn.execute("UPDATE memories SET status = 'deleted' WHERE cube = %s AND id = %s", (cube, "run"))
    assert conn.execute(search, (cube, "runs marathon")).fetchall() == []  # as FTS5 drops a deleted memory's row


def test_a_committed_change_notifies_a_listener(postgres_database: str, conn: psycopg.Connection[Any]) -> None:
    cube = add_cube(conn, "team")
    with psycopg.connect(postgres_database, autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANGES_CHANNEL)))
        with conn.transaction():
            seqs = conn.execute(
                "INSERT INTO change_log (cube, memory_id, op) VALUES (%s, %s, 'add'), (%s, %s, 'add') RETURNING seq",
                (cube, "m1", cube, "m2"),
            ).fetchall()
            assert list(listener.notifies(timeout=0.3)) == []  # nothing before the commit
        received = list(listener.notifies(timeout=5, stop_after=1))

    assert len(received) == 1
    assert received[0].channel == CHANGES_CHANNEL
    assert json.loads(received[0].payload) == {"cube": "team", "seq": max(seq for (seq,) in seqs)}


HOSTILE = [
    "'; DROP TABLE memories; --",
    "Robert'); DROP TABLE cubes;--",
    'O\'Brien said "hi" \\ and left',
    "$$ dollar $$ $tag$ quoted $tag$",
    "%s %(name)s {} {0}",
    "Zoë 🙂 日本語 עברית \u202e reversed \u200b zero-width",
    "line one\nline two\ttab\r",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_round_trip_verbatim(conn: psycopg.Connection[Any], hostile: str) -> None:
    cube = add_cube(conn, hostile)
    add_memory(conn, cube, hostile, hostile, tags=[hostile], client=hostile, metadata=Jsonb({hostile: hostile}))

    row = conn.execute(
        "SELECT c.name, m.id, m.text, m.tags, m.client, m.metadata FROM memories m JOIN cubes c ON c.id = m.cube WHERE m.id = %s",
        (hostile,),
    ).fetchone()
    assert row == (hostile, hostile, hostile, [hostile], hostile, {hostile: hostile})
    assert conn.execute("SELECT count(*) FROM memories").fetchone() == (1,)


def test_a_role_without_rights_gets_a_one_line_error(postgres_url: str, postgres_database: str) -> None:
    role, password = f"memcube_guest_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        # DDL takes no bound parameters: the name is quoted as an identifier, the password as a literal.
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    guest_url = conninfo.make_conninfo(postgres_database, user=role, password=password)
    try:
        with psycopg.connect(guest_url, autocommit=True) as guest:
            with pytest.raises(Unavailable) as missing_extension:
                migrate(guest)
            message = str(missing_extension.value)
            assert "\n" not in message
            assert role in message and "'vector' extension" in message and "superuser" in message

            with psycopg.connect(postgres_database, autocommit=True) as owner:
                owner.execute("CREATE EXTENSION vector")
            if guest.info.server_version >= 150000:  # since 15, PUBLIC may not create in schema public
                with pytest.raises(Unavailable) as no_tables:
                    migrate(guest)
                assert "\n" not in str(no_tables.value)
                assert role in str(no_tables.value) and "create MemCube's tables" in str(no_tables.value)
            assert guest.execute("SELECT to_regclass('memories')").fetchone() == (None,)  # nothing half-made
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_server_without_the_extension_gets_a_one_line_error(conn: psycopg.Connection[Any]) -> None:
    """The embedded server ships pgvector, so a server that lacks it is not at hand: the same code
    path meets PostgreSQL's real 'not available' error through an extension no server has."""
    with pytest.raises(Unavailable) as missing:
        create_extension(conn, "memcube_no_such_extension")
    message = str(missing.value)
    assert "\n" not in message
    assert "no 'memcube_no_such_extension' extension" in message and "install pgvector" in message
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection is still usable
