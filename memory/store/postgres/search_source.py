"""One cube of the PostgreSQL store as the ranking reads it (``memory.store.contract.SearchSource``, ``VectorScores``).

``memory.retrieval.search.hybrid_search`` runs unchanged on it: the keyword, context and
entity reads go to ``PostgresSearchView``, the vector signal to pgvector's HNSW index
(``PostgresVectors``). The ranking scores a memory's cosine as a z-score against the cube's
spread of cosines for that query; the SQLite engine has every vector in RAM and takes the
exact mean and deviation, here they come from up to ``SPREAD_SAMPLE`` of the cube's vectors,
kept in RAM until the cube's change log moves (all of them, so exact, below that size).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import psycopg

from memory.store.contract import HitRow
from memory.store.postgres.change_log import newest_change
from memory.store.postgres.search_view import PostgresSearchView
from memory.store.postgres.vectors import PostgresVectors, searchable_statuses

SPREAD_SAMPLE = 4096  # vectors that stand for a large cube's spread of cosines


class PostgresSearchSource:
    """Reads of one cube for searches: two connections, so the context stage runs beside the others."""

    def __init__(self, url: str, cube_id: int) -> None:
        self.cube_id = cube_id
        self._main = psycopg.connect(url, autocommit=True)
        self._side = psycopg.connect(url, autocommit=True)
        self._locks = (threading.Lock(), threading.Lock())

    @contextmanager
    def search_view(self) -> Iterator[PostgresSearchView]:
        with self._locks[0]:
            yield PostgresSearchView(self._main, self.cube_id)

    @contextmanager
    def side_view(self) -> Iterator[PostgresSearchView]:
        with self._locks[1]:
            yield PostgresSearchView(self._side, self.cube_id)

    def hit_rows(self, row_ids: Sequence[int]) -> dict[int, HitRow]:
        with self._locks[0]:
            return hit_rows(self._main, self.cube_id, row_ids)

    def close(self) -> None:
        self._main.close()
        self._side.close()


def hit_rows(conn: psycopg.Connection[Any], cube_id: int, row_ids: Sequence[int]) -> dict[int, HitRow]:
    """What a search hit shows, by row id (``contract.HitRow``: tags as stored JSON text)."""
    if not row_ids:
        return {}
    found = conn.execute(
        "SELECT row_id, id, text, type, tags::text, occurred_at, created_at, status, state, due_at, parent_id "
        "FROM memories WHERE cube = %s AND row_id = ANY(%s)",
        (cube_id, list(row_ids)),
    ).fetchall()
    return {int(row[0]): cast(HitRow, tuple(row[1:])) for row in found}


@dataclass(frozen=True)
class PostgresCosines:
    """A query's cosines as the ranking asks for them: the best from the index, any memory's on demand."""

    scores: np.ndarray  # the cosines with the spread sample (empty: the cube has no vector)
    mean: float
    std: float
    _vectors: PostgresVectors
    _query: np.ndarray
    _include_archived: bool
    _allowed: np.ndarray | None

    def top(self, k: int) -> list[tuple[int, float]]:
        return self._vectors.nearest(self._query, k, include_archived=self._include_archived, allowed=self._allowed)

    def of(self, row_ids: Iterable[int]) -> dict[int, float]:
        return self._vectors.cosines_of(self._query, list(row_ids))


class PostgresVectorScores:
    """The vector signal of one cube: ``cosines`` for each query (``memory.store.contract.VectorScores``)."""

    def __init__(self, url: str, cube_id: int) -> None:
        self._conn = psycopg.connect(url, autocommit=True)
        self._vectors = PostgresVectors(self._conn, cube_id)
        self.cube_id = cube_id
        self._lock = threading.Lock()
        self._sample: dict[bool, tuple[int, np.ndarray, np.ndarray]] = {}  # archived too? -> (log high, row ids, vectors)

    def cosines(self, query: np.ndarray, *, include_archived: bool = False, allowed: np.ndarray | None = None) -> PostgresCosines:
        row_ids, matrix = self._spread_sample(include_archived)
        every = matrix @ query.astype(np.float32) if len(matrix) else np.zeros(0, dtype=np.float32)
        # A filter only narrows which memories may come back: the scale stays the whole cube's, as in
        # the data folder's mirror (over a day's two memories a z-score would make noise of a 0.01 cosine).
        mean = float(every.mean()) if len(every) else 0.0
        std = float(every.std()) if len(every) else 0.0
        scores = every[np.isin(row_ids, allowed)] if allowed is not None and len(row_ids) else every
        return PostgresCosines(scores, mean, std, self._vectors, query, include_archived, allowed)

    def _spread_sample(self, include_archived: bool) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            high = newest_change(self._conn, self.cube_id)
            kept = self._sample.get(include_archived)
            if kept is not None and kept[0] == high:
                return kept[1], kept[2]
            rows = self._conn.execute(
                "SELECT row_id, embedding::real[] FROM memories WHERE cube = %s AND status = ANY(%s) AND embedding IS NOT NULL "
                "ORDER BY random() LIMIT %s",
                (self.cube_id, searchable_statuses(include_archived), SPREAD_SAMPLE),
            ).fetchall()
            row_ids = np.array([r[0] for r in rows], dtype=np.int64)
            matrix = (
                np.array([r[1] for r in rows], dtype=np.float32).reshape(len(rows), -1) if rows else np.zeros((0, 0), np.float32)
            )
            self._sample[include_archived] = (high, row_ids, matrix)
            return row_ids, matrix

    def close(self) -> None:
        self._conn.close()
