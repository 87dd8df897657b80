"""The vector signal on PostgreSQL: memories' embeddings in pgvector's HNSW index.

The SQLite engine scores every stored vector of a cube in the process
(``memory.store.vector_mirror``: exact, int8 with a bound); a shared cube may hold millions
and live on another machine, so here the database answers with its approximate index. One
HNSW index covers every cube (``memories_embedding``, cosine distance); a query filters by
cube and status, which pgvector 0.8 serves with an iterative scan (it reads further into the
graph until ``k`` rows pass the filter) instead of returning fewer rows than asked.

``ef_search`` (how wide the graph search runs) trades time for recall: ``nearest`` sets it per
query from ``k`` (``ef_for``), measured in bench/postgres.py for recall@10 against the exact scan.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

# bench/postgres.py (recall@10 against the exact scan, clustered generated vectors, m=16,
# ef_construction=64, two cores): at 100,000 memories ef_search 40 (pgvector's default) gave 0.964
# and 100 gave 1.000; at 1,000,000, 100 / 200 / 400 gave 0.805 / 0.931 / 0.955, at p50 5.8 / 8.3 /
# 19.4 ms and p95 9.3 / 16.5 / 26.3 ms. 400 holds 0.95 at a million, well inside issue 28's 50 ms.
MIN_EF_SEARCH = 400
EF_PER_RESULT = 4
SEARCHABLE = ("active",)
SEARCHABLE_WITH_ARCHIVED = ("active", "archived")


def searchable_statuses(include_archived: bool) -> list[str]:
    """The statuses a search returns: active memories, and archived ones when asked."""
    return list(SEARCHABLE_WITH_ARCHIVED if include_archived else SEARCHABLE)


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form of a vector, '[x,y,...]': what the server casts to ``vector``.

    Nine significant digits: a float32 goes to text and back unchanged.
    """
    return "[" + ",".join(format(float(x), ".9g") for x in np.asarray(vector, dtype=np.float32)) + "]"


MAX_EF_SEARCH = 1000  # pgvector's bound; past it the iterative scan reads on until k rows are found


def ef_for(k: int) -> int:
    return min(MAX_EF_SEARCH, max(MIN_EF_SEARCH, EF_PER_RESULT * k))


class PostgresVectors:
    """The embeddings of one cube's memories."""

    def __init__(self, conn: psycopg.Connection[Any], cube_id: int) -> None:
        self._conn = conn  # autocommit; each query runs in its own transaction (for its SET LOCALs)
        self._lock = threading.Lock()
        self.cube_id = cube_id

    def store(self, conn: psycopg.Connection[Any], rows: Sequence[tuple[int, np.ndarray]]) -> None:
        """Set the vectors of these memories (by row id), in the caller's transaction."""
        with conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE memories SET embedding = %s::vector WHERE cube = %s AND row_id = %s",
                [(vector_text(vector), self.cube_id, row_id) for row_id, vector in rows],
            )

    def nearest(
        self,
        vector: np.ndarray,
        k: int,
        *,
        include_archived: bool = False,
        ef_search: int | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` memories nearest to ``vector`` as ``(row id, cosine)``, best first (approximate: HNSW).

        ``allowed``: only these row ids (a search's filters), which the iterative scan reads past the others for.
        """
        settings = "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'strict_order', true)"
        return self._ranked(
            vector, k, include_archived, (settings, (str(ef_search or ef_for(k)),)), "embedding <=> %(v)s::vector", allowed
        )

    def exact(self, vector: np.ndarray, k: int, *, include_archived: bool = False) -> list[tuple[int, float]]:
        """``nearest`` by scanning every vector of the cube (no index): the reference for recall."""
        settings = "SELECT set_config('enable_indexscan', 'off', true)"
        return self._ranked(vector, k, include_archived, (settings, ()), "cosine DESC, row_id")

    def cosines_of(self, vector: np.ndarray, row_ids: Sequence[int]) -> dict[int, float]:
        """The exact cosine of each of these memories that has a vector."""
        if not row_ids:
            return {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT row_id, 1 - (embedding <=> %s::vector) FROM memories "
                "WHERE cube = %s AND row_id = ANY(%s) AND embedding IS NOT NULL",
                (vector_text(vector), self.cube_id, list(row_ids)),
            ).fetchall()
        return {int(row_id): float(cosine) for row_id, cosine in rows}

    def _ranked(
        self,
        vector: np.ndarray,
        k: int,
        include_archived: bool,
        settings: tuple[str, tuple[str, ...]],
        order: str,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """The cube's searchable memories with a vector, in ``order``, under this transaction's ``settings``."""
        statuses = searchable_statuses(include_archived)
        only = "AND row_id = ANY(%(allowed)s) " if allowed is not None else ""
        with self._lock, self._conn.transaction():
            self._conn.execute(settings[0], settings[1])
            rows = self._conn.execute(
                "SELECT row_id, 1 - (embedding <=> %(v)s::vector) AS cosine FROM memories "
                f"WHERE cube = %(cube)s AND status = ANY(%(statuses)s) AND embedding IS NOT NULL {only}"
                f"ORDER BY {order} LIMIT %(k)s",  # one of the two orders above: no value of the caller's
                {
                    "v": vector_text(vector),
                    "cube": self.cube_id,
                    "statuses": statuses,
                    "k": k,
                    "allowed": [] if allowed is None else [int(r) for r in allowed],
                },
            ).fetchall()
        return [(int(row_id), float(cosine)) for row_id, cosine in rows]
