"""One cube of the PostgreSQL store: its writes, and the reads of a memory and its history.

The writes are ``MemoryWriter``'s, the same decisions the data folder's ``CubeStore`` makes,
over ``PostgresWriteTables``. Each runs in one transaction that first takes the cube's write
lock (``change_log.lock_cube``), so two servers writing to one cube queue as two writers of
one SQLite file do: an exact duplicate, a restatement or a supersession is decided on what
the other server committed. A write is in the change log (and its ``NOTIFY`` sent) if and
only if it committed.

Methods are blocking (call them from worker threads); one connection serves the writes and
the reads here, one more serves the change log's follower, each behind its lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg

from memory.errors import NotFound
from memory.models import Memory
from memory.store.import_rows import UNFINISHED_KEY, unfinished_from
from memory.store.postgres.change_log import PostgresChangeLog, lock_cube
from memory.store.postgres.connect import connect
from memory.store.postgres.graph_reads import PostgresGraphReads
from memory.store.postgres.memory_reads import PostgresMemoryReads
from memory.store.postgres.schema import SCHEMA_VERSION
from memory.store.postgres.search_source import PostgresSearchSource, PostgresVectorScores
from memory.store.postgres.settings import meta
from memory.store.postgres.write_tables import MEMORY_SELECT, PostgresWriteTables
from memory.store.rows import row_to_memory
from memory.store.writer import MemoryWriter, WritesThroughWriter, check_ids


def ensure_cube(conn: psycopg.Connection[Any], name: str) -> int:
    """The id of the store's cube ``name``, made if the store has none of that name."""
    row = conn.execute(
        "INSERT INTO cubes (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id", (name,)
    ).fetchone()
    assert row is not None
    return int(row[0])


class PostgresCubeStore(PostgresGraphReads, PostgresMemoryReads, WritesThroughWriter):
    """The cube ``name`` of the store at ``url`` (migrated), as the server ``follower`` follows its changes."""

    schema_version = SCHEMA_VERSION
    # Close memories a new fact or preference is judged against (``close_active``): the nearest
    # this many by the index. The data folder's mirror compares with every memory instead.
    CLOSE_CANDIDATES = 50

    def __init__(self, url: str, name: str, *, follower: str) -> None:
        self.cube = name
        self.url = url
        self._ranking: tuple[PostgresSearchSource, PostgresVectorScores] | None = None
        self._conn = connect(url)
        self._lock = threading.RLock()
        try:
            self.cube_id = ensure_cube(self._conn, name)
            self._log_conn = connect(url)
        except BaseException:
            self._conn.close()
            raise
        self.changes = PostgresChangeLog(self._log_conn, self.cube_id, follower)
        self._writer = MemoryWriter(name, self._tables)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._ranking is not None:
                self._ranking[0].close()
                self._ranking[1].close()
        self._log_conn.close()

    def ranking_reads(self) -> tuple[PostgresSearchSource, PostgresVectorScores]:
        """Where a search of this cube reads (``hybrid_search``'s source and vector signal): connections of their own."""
        with self._lock:
            if self._ranking is None:
                self._ranking = (PostgresSearchSource(self.url, self.cube_id), PostgresVectorScores(self.url, self.cube_id))
            return self._ranking

    def close_active(self, queries: np.ndarray, threshold: float) -> list[dict[int, float]]:
        """For each query vector, the active memories with a cosine of at least ``threshold``: ``{row_id: cosine}``
        (among the ``CLOSE_CANDIDATES`` nearest by the index)."""
        return [
            {row_id: cosine for row_id, cosine in self.nearest(query, self.CLOSE_CANDIDATES) if cosine >= threshold}
            for query in queries
        ]

    def merge_fulltext(self, *, force: bool = False) -> bool:
        """Nothing to merge: PostgreSQL's GIN indexes keep their pending entries merged themselves (autovacuum)."""
        return False

    @contextmanager
    def write(self) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction holding the cube's write lock (other servers' writers queue behind it)."""
        with self._lock, self._conn.transaction():
            lock_cube(self._conn, self.cube_id)
            yield self._conn

    @contextmanager
    def _tables(self) -> Iterator[PostgresWriteTables]:
        with self.write() as conn:
            yield PostgresWriteTables(self.cube, self.cube_id, conn, self.changes)

    # -- imports (``memory.io.archive``) --------------------------------------------------------

    # ``import_rows`` is ``WritesThroughWriter``'s: ``MemoryWriter.import_rows``, under the cube's lock.

    @contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """Nothing to set: the data folder enlarges its page cache for an import; the server has its own."""
        yield

    def import_known(self, ids: Sequence[str], hashes: Sequence[str]) -> tuple[set[str], set[str]]:
        """(those of ``ids`` already in the cube, those of ``hashes`` a live memory has): what an import would skip."""
        with self._lock:
            return PostgresWriteTables(self.cube, self.cube_id, self._conn, self.changes).known(ids, hashes)

    def unfinished_import(self) -> dict[str, Any] | None:
        """The import that began writing into this cube and did not finish (killed), if any."""
        return unfinished_from(self.meta(UNFINISHED_KEY))

    def finish_import(self) -> None:
        with self._tables() as tables:
            tables.set_setting(UNFINISHED_KEY, None)

    def purge(self, ids: Sequence[str], *, client: str | None) -> None:
        """Erase memories for good; the history keeps one contentless 'purge' row each.

        PostgreSQL keeps no erased text readable: a deleted row's old version is invisible to
        every query and is reclaimed by (auto)vacuum, unlike SQLite's free pages and FTS segments.
        """
        super().purge(ids, client=client)

    # -- reads ---------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            return meta(self._conn, self.cube_id, key)

    def get_many(self, ids: Sequence[str], *, include_deleted: bool = True) -> list[Memory]:
        check_ids(ids)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {MEMORY_SELECT} FROM memories WHERE cube = %s AND id = ANY(%s)", (self.cube_id, list(ids))
            ).fetchall()
        memories = {row[1]: row_to_memory(self.cube, row) for row in rows}
        by_id = {i: m for i, m in memories.items() if include_deleted or m.status != "deleted"}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise NotFound(
                f"no memory {', '.join(missing[:10])} in cube '{self.cube}'"
                + (" (it was deleted)" if any(i in memories for i in missing) else "")
            )
        found = [by_id[i] for i in ids]
        self._attach_feedback(found)
        return found

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        check_ids([memory_id])
        with self._lock:
            rows = self._conn.execute(
                "SELECT version, op, at, client, changes FROM memory_versions WHERE cube = %s AND memory_id = %s ORDER BY seq",
                (self.cube_id, memory_id),
            ).fetchall()
        if not rows:
            raise NotFound(f"no memory {memory_id} in cube '{self.cube}'")
        return [{"version": v, "op": op, "at": at, "client": c, "changes": ch} for v, op, at, c, ch in rows]

    def stored_vectors(self) -> list[tuple[str, np.ndarray]]:
        """``(memory id, vector)`` of every memory that has one, in row order (an export's vectors)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, embedding::real[] FROM memories WHERE cube = %s AND embedding IS NOT NULL ORDER BY row_id",
                (self.cube_id,),
            ).fetchall()
        return [(str(memory_id), np.asarray(values, dtype=np.float32)) for memory_id, values in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            by_status = dict(
                self._conn.execute("SELECT status, n FROM memory_status_counts WHERE cube = %s", (self.cube_id,)).fetchall()
            )
            row = self._conn.execute(
                "SELECT (SELECT count(DISTINCT norm) FROM memory_entities WHERE cube = %(cube)s), "
                "(SELECT coalesce(sum(jsonb_array_length(relations)), 0) FROM memories "
                " WHERE cube = %(cube)s AND status = 'active')",
                {"cube": self.cube_id},
            ).fetchone()
        assert row is not None
        return {
            "active": int(by_status.get("active", 0)),
            "archived": int(by_status.get("archived", 0)),
            "deleted": int(by_status.get("deleted", 0)),
            "entities": int(row[0]),
            "relations": int(row[1]),
            "graph_pending": self.changes.count(),
        }
