"""The reads a cube's graph, entity index, search and supersession make, on the PostgreSQL store.

``PostgresGraphReads`` gives ``PostgresCubeStore`` the methods of the data folder's ``CubeStore``
that the local Kuzu graph (``memory.graph.graph_store``), the entity caches, the ranking and
``memory.supersession`` call, with the same signatures and answers: a server's local graph can
follow a cube of the shared store as it follows a ``memory.db``. What is more than SQL (building
a ``GraphRow``, merging the client's relations into ``relation_peers``, numbering thread
neighbours) is one function both engines call (``memory.store.cube_store``, ``memory.store.threads``).

Every query is filtered by the cube and takes its values as bound parameters. Text that is
ordered or compared (entity names, times) is compared ``COLLATE "C"``, byte by byte, as SQLite
compares it, whatever the database's locale.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from psycopg import pq

from memory.store.contract import GraphOutbox, HitRow
from memory.store.cube_store import IN_GRAPH, GraphRow, RelationPeer, graph_rows_of, relation_peers_of
from memory.store.postgres import threads
from memory.store.postgres.change_log import PostgresChangeLog
from memory.store.postgres.search_source import hit_rows
from memory.store.postgres.settings import set_meta
from memory.store.postgres.vectors import PostgresVectors
from memory.store.postgres.write_tables import PostgresWriteTables
from memory.store.threads import neighbours_by_id
from memory.store.writer import relation_rows

_AT = "coalesce(m.occurred_at, m.created_at)"  # when a memory's relations hold from


class PostgresGraphReads(GraphOutbox):
    """Graph, entity, vector and thread reads of one cube of the store (a mixin of ``PostgresCubeStore``);
    the change log as the graph follows it (``outbox_*``) is ``GraphOutbox``'s, over ``self.changes``."""

    cube: str
    cube_id: int
    changes: PostgresChangeLog
    _conn: psycopg.Connection[Any]  # autocommit
    _lock: threading.RLock

    if TYPE_CHECKING:

        def write(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection[Any]]:
        """One snapshot for several statements (``CubeStore._read``): a write that commits between them is seen by none."""
        with self._lock:
            if self._conn.info.transaction_status != pq.TransactionStatus.IDLE:
                yield self._conn  # already inside a transaction of this connection: read in it
                return
            with self._conn.transaction():
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield self._conn

    # -- entities ------------------------------------------------------------------------

    def entity_keys(self) -> dict[str, str]:
        """Every entity key a live memory names, with one display name (the least, byte by byte).

        Only live memories have rows in ``memory_entities`` (a delete or a purge removes them)."""
        with self._lock:
            rows = self._conn.execute(
                'SELECT norm, min(name COLLATE "C") FROM memory_entities WHERE cube = %s GROUP BY norm', (self.cube_id,)
            ).fetchall()
        return {str(norm): str(name) for norm, name in rows}

    def top_entities(self, limit: int) -> list[tuple[str, int]]:
        """The entities live memories name most, ``(display name, memories)``, most named first."""
        with self._lock:
            rows = self._conn.execute(
                'SELECT min(name COLLATE "C"), count(DISTINCT memory_row_id) AS n FROM memory_entities WHERE cube = %s '
                'GROUP BY norm ORDER BY n DESC, norm COLLATE "C" LIMIT %s',
                (self.cube_id, limit),
            ).fetchall()
        return [(str(name), int(count)) for name, count in rows]

    def entity_key_delta(self, since: tuple[int, str] | None) -> tuple[tuple[int, str], set[str], bool]:
        """The entity keys to know since the state ``since`` (``(change seq, entity epoch)`` from an
        earlier call): ``(state now, keys, whole)``, as ``CubeStore.entity_key_delta``.

        The writer keeps both counters in the cube's ``cube_meta`` (``PostgresWriteTables.next_seq``,
        ``entities_removed``); a cube not written to yet has neither, and is at ``(0, '0')``.
        """
        with self._snapshot() as conn:
            meta = dict(
                conn.execute(
                    "SELECT key, value FROM cube_meta WHERE cube = %s AND key IN ('change_seq', 'entity_epoch')", (self.cube_id,)
                ).fetchall()
            )
            now = (int(meta.get("change_seq") or 0), str(meta.get("entity_epoch") or "0"))
            if since is None or since[1] != now[1] or since[0] > now[0]:
                rows = conn.execute("SELECT DISTINCT norm FROM memory_entities WHERE cube = %s", (self.cube_id,)).fetchall()
                return now, {str(k) for (k,) in rows}, True
            if since[0] == now[0]:
                return now, set(), False
            rows = conn.execute(
                "SELECT DISTINCT e.norm FROM memories m JOIN memory_entities e ON e.cube = m.cube AND e.memory_row_id = m.row_id "
                "WHERE m.cube = %s AND m.seq > %s",
                (self.cube_id, since[0]),
            ).fetchall()
            return now, {str(k) for (k,) in rows}, False

    # -- the graph -----------------------------------------------------------------------

    def graph_member_ids(self) -> list[str]:
        """Memories that have a node in the graph: active ones, and superseded ones (the far end of a SUPERSEDES link)."""
        # In the order SQLite reads them (its index on status and created_at): a rebuild meets
        # the same first spelling of each entity name, its display, on either engine.
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id FROM memories WHERE cube = %s AND ({IN_GRAPH}) "
                "ORDER BY status <> 'active', created_at COLLATE \"C\", row_id",
                (self.cube_id,),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def known_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` the cube has a row or a version of (a purge leaves a version)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT i FROM unnest(%(ids)s::text[]) AS i "
                "WHERE EXISTS (SELECT 1 FROM memories WHERE cube = %(cube)s AND id = i) "
                "OR EXISTS (SELECT 1 FROM memory_versions WHERE cube = %(cube)s AND memory_id = i)",
                {"ids": list(ids), "cube": self.cube_id},
            ).fetchall()
        return {str(r[0]) for r in rows}

    def graph_rows(self, ids: Sequence[str]) -> dict[str, GraphRow]:
        """What the graph derives from each memory (``cube_store.graph_rows_of``)."""
        if not ids:
            return {}
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT id, status, type, entities::text, relations::text, supersedes, superseded_by, "
                "coalesce(occurred_at, created_at), updated_at, row_id FROM memories WHERE cube = %s AND id = ANY(%s)",
                (self.cube_id, list(ids)),
            ).fetchall()
            # In SQLite's order: its table is keyed (memory row, source_norm, type, target_norm).
            found = conn.execute(
                "SELECT memory_row_id, source, type, target, ended FROM memory_relations WHERE cube = %s AND memory_row_id = ANY(%s) "
                'ORDER BY memory_row_id, source_norm COLLATE "C", type COLLATE "C", target_norm COLLATE "C"',
                (self.cube_id, [r[9] for r in rows]),
            ).fetchall()
        return graph_rows_of(rows, found)

    def relation_peers(self, keys: Sequence[tuple[str, str]]) -> list[RelationPeer]:
        """The relations of live memories (read from texts, or given by clients) with these (source, type)."""
        if not keys:
            return []
        wanted = sorted(set(keys))
        with self._snapshot() as conn:
            rows = conn.execute(
                f"SELECT r.source_norm, r.type, r.target_norm, m.id, {_AT}, r.ended "
                "FROM unnest(%(sources)s::text[], %(types)s::text[]) AS k(s, t) "
                "JOIN memory_relations r ON r.cube = %(cube)s AND r.source_norm = k.s AND r.type = k.t "
                "JOIN memories m ON m.cube = r.cube AND m.row_id = r.memory_row_id "
                "WHERE m.status = 'active' AND m.relations = '[]'::jsonb",
                {"sources": [s for s, _ in wanted], "types": [t for _, t in wanted], "cube": self.cube_id},
            ).fetchall()
            client = conn.execute(
                f"SELECT m.id, {_AT}, j.value::text FROM memories m, jsonb_array_elements(m.relations) j "
                "WHERE m.cube = %s AND m.status = 'active' AND m.relations <> '[]'::jsonb ORDER BY m.row_id",
                (self.cube_id,),
            ).fetchall()
        return relation_peers_of(rows, client, keys)

    def unread_relations(self, limit: int) -> tuple[list[tuple[int, str]], int]:
        """None: every memory of the store had its relations read from its text when it was written.

        The store's schema begins at the data folder's schema 11, the one that reads them, so no
        memory written here predates it. A cube copied from a data folder whose older memories were
        not read yet brings the folder's mark (``relations_unread_below``) in its settings, but that
        counts the folder's row ids, which mean nothing here: read them there (``memcube doctor``)
        before the copy."""
        return [], 0

    def save_read_relations(self, rows: Sequence[tuple[int, list[dict[str, Any]]]], *, done: bool) -> None:
        """Store relations read from older memories and queue their graph work (``CubeStore.save_read_relations``);
        ``done``: none are left, drop the mark."""
        with self.write() as conn:
            tables = PostgresWriteTables(self.cube, self.cube_id, conn, self.changes)
            for row_id, relations in rows:
                tables.insert_relations(row_id, relation_rows(relations))
            read = [row_id for row_id, relations in rows if relations]
            ids = conn.execute(
                "SELECT id FROM memories WHERE cube = %s AND row_id = ANY(%s) ORDER BY row_id", (self.cube_id, read)
            ).fetchall()
            self.changes.queue(conn, [str(i) for (i,) in ids])
            if rows:
                set_meta(conn, self.cube_id, "relations_unread_from", str(max(r for r, _ in rows) + 1))
            if done:
                conn.execute(
                    "DELETE FROM cube_meta WHERE cube = %s AND key IN ('relations_unread_below', 'relations_unread_from')",
                    (self.cube_id,),
                )

    # -- vectors, supersession, threads, search hits ----------------------------------------

    def nearest(self, vector: np.ndarray, k: int, *, include_archived: bool = False) -> list[tuple[int, float]]:
        """The ``k`` nearest memories as ``(row id, cosine)``, best first, by pgvector's HNSW index."""
        with self._lock:
            return PostgresVectors(self._conn, self.cube_id).nearest(vector, k, include_archived=include_archived)

    def vector_of(self, memory_id: str) -> np.ndarray | None:
        """The memory's vector (None: it has none, or there is no such memory)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT embedding::real[] FROM memories WHERE cube = %s AND id = %s AND embedding IS NOT NULL",
                (self.cube_id, memory_id),
            ).fetchone()
        return np.asarray(row[0], dtype=np.float32) if row else None

    def judging_rows(self, row_ids: Sequence[int]) -> list[tuple[int, str, str, str, str | None, str | None, list[str]]]:
        """What ``memory.supersession`` reads of these memories, in row order (``CubeStore.judging_rows``)."""
        with self._lock:
            found = self._conn.execute(
                "SELECT row_id, id, text, type, role, subject, entities FROM memories WHERE cube = %s AND row_id = ANY(%s) "
                "ORDER BY row_id",
                (self.cube_id, list(row_ids)),
            ).fetchall()
        return [(int(r), i, t, ty, ro, su, list(e or [])) for r, i, t, ty, ro, su, e in found]

    def thread_neighbours_of(self, ids: Sequence[str], turns: int, statuses: tuple[str, ...]) -> list[tuple[str, int, int]]:
        """For each memory, its live thread neighbours as ``(memory id, neighbour row id, offset)``, offset < 0 before it."""
        if not ids:
            return []
        with self._snapshot() as conn:
            rows = {
                str(i): int(r)
                for i, r in conn.execute(
                    "SELECT id, row_id FROM memories WHERE cube = %s AND id = ANY(%s)", (self.cube_id, list(ids))
                ).fetchall()
            }
            return neighbours_by_id(
                ids, rows, lambda row_id: threads.thread_neighbours(conn, self.cube_id, row_id, turns, turns, statuses)
            )

    def hit_rows(self, row_ids: Sequence[int]) -> dict[int, HitRow]:
        """What a search hit shows, by row id (``CubeStore.hit_rows``)."""
        with self._lock:
            return hit_rows(self._conn, self.cube_id, row_ids)
