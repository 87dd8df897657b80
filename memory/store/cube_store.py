"""The cube's SQLite file: memories, their versions, entities, FTS and vectors.

SQLite is the source of truth. Every write runs in one ``BEGIN IMMEDIATE`` transaction
that changes the memory row, appends its version row, writes or drops its vector,
records its entities, queues the graph work (``graph_outbox``) and stamps the rows with
the next change sequence. The FTS index follows the rows through triggers. So a reader
in any process sees either all of a change or none of it.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memory.entities import normalize
from memory.errors import NotFound, Unavailable
from memory.models import FeedbackEntry, Memory, MemoryStatus
from memory.store import bulk_import, export, fulltext_merge, maintenance, schema, settings
from memory.store import connection as db
from memory.store import threads as context
from memory.store.browse import BrowseFilter, count_query, page_end, page_query
from memory.store.change_log import ChangeLog
from memory.store.contract import GraphOutbox, HitRow
from memory.store.file_watch import FileWatch, disk_full, full_disk_error
from memory.store.filter_sql import SQLITE
from memory.store.import_rows import UNFINISHED_KEY, ImportRow, ImportRun, unfinished_from, unfinished_value
from memory.store.read_rules import (
    MAX_DENIALS,
    ProfileRows,
    by_row_id,
    goals_and_tasks_query,
    kept_denial,
    profile_sections,
)
from memory.store.rows import FIELDS, MEMORY_COLUMNS, row_to_memory
from memory.store.search_reads import SearchView
from memory.store.sqlite_tables import SqliteWriteTables
from memory.store.vector_mirror import VectorMirror, sqlite_vec_knn
from memory.store.writer import MemoryWriter, WritesThroughWriter, check_ids, entity_rows, relation_rows
from memory.timeutil import now_stored

log = logging.getLogger(__name__)
# Below this much free space, a database that SQLite cannot open is taken for a full disk:
# opening makes the -shm file (32 KiB) and may need to grow the WAL.
OPEN_ROOM_BYTES = 1024 * 1024


# The memories that have a node in the graph: active ones, and superseded ones (the far end of a SUPERSEDES link).
IN_GRAPH = "status = 'active' OR (status = 'archived' AND superseded_by IS NOT NULL)"


@dataclass
class GraphRow:
    """What the graph derives from one memory."""

    id: str
    status: str
    type: str
    entities: list[str]
    relations: list[dict[str, Any]]
    supersedes: str | None
    superseded_by: str | None
    # Relations read from the text ({source, type, target, ended}), and the time they hold from:
    # when the memory happened, else when it was written; ``updated_at``: when a superseded one was replaced.
    extracted: list[dict[str, Any]] = field(default_factory=list)
    at: str | None = None
    updated_at: str | None = None


@dataclass
class RelationPeer:
    """A relation of a live memory, as ``relation_peers`` finds it by its source and type."""

    source: str  # normalised
    type: str
    target: str  # normalised
    memory_id: str
    at: str
    ended: bool


class CubeStore(GraphOutbox, WritesThroughWriter):
    """One cube's ``memory.db``. Methods are blocking; call them from worker threads."""

    schema_version = schema.SCHEMA_VERSION

    def __init__(self, cube: str, path: Path) -> None:
        self.cube = cube
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = db.connect(path)
        except Exception as exc:  # on a full disk SQLite cannot even make its -shm file (issue 26)
            if disk_full(exc) or shutil.disk_usage(path.parent).free < OPEN_ROOM_BYTES:
                raise full_disk_error(path) from exc
            raise
        self._lock = threading.RLock()
        # A second connection, for the reads a search runs beside the main ones (``side_view``).
        self._side_conn: sqlite3.Connection | None = None
        self._side_lock = threading.Lock()
        try:
            schema.migrate(self._conn)
        except Exception as exc:
            if disk_full(exc):
                raise full_disk_error(path) from exc
            raise
        self._files = FileWatch(path)
        self.changes = ChangeLog(self._conn, self._lock, self.write)
        self._writer = MemoryWriter(cube, self._tables)

    def close(self) -> None:
        with self._lock:
            try:
                self._files.watch(self._conn)  # a file gone: save its changes while the connection can still see them
            except Exception:  # closing goes on; the reason is logged
                log.exception("cube %s: closing with its changes not saved", self.cube)
            self._conn.close()
        with self._side_lock:
            if self._side_conn is not None:
                self._side_conn.close()
                self._side_conn = None

    # -- transactions ---------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before any read so writers queue instead of deadlocking."""
        with self._lock:
            self._files.check(self._conn)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    # Inside the try: a COMMIT that fails (disk full, I/O error) must roll back
                    # too, or the connection stays in a transaction every later write would join.
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            except Exception as exc:
                if disk_full(exc):
                    raise full_disk_error(self.path) from exc
                raise
            self._files.watch(self._conn)  # a commit into a file already deleted: save it now

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several statements."""
        with self._lock:
            if not self._conn.in_transaction:
                try:
                    self._files.watch(self._conn, wait=False)
                except Unavailable as exc:  # the read goes on; the next write says it, and tries again
                    log.error("cube %s: %s", self.cube, exc)
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    @contextmanager
    def _tables(self) -> Iterator[SqliteWriteTables]:
        """A write transaction, as the tables ``MemoryWriter`` changes."""
        with self.write() as conn:
            yield SqliteWriteTables(self.cube, conn, self.changes)

    # -- metadata -------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            return settings.meta(self._conn, key)

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        settings.set_meta(conn, key, value)

    def save_meta(self, key: str, value: str) -> None:
        """Set one cube setting in its own transaction (e.g. the client's entity alias choices)."""
        with self.write() as conn:
            self.set_meta(conn, key, value)

    def roles_and_tags(self) -> tuple[list[str], list[str]]:
        """The roles and the tags live memories use, each sorted: what a client's completion offers."""
        with self._read() as conn:
            roles = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT role FROM memories WHERE status != 'deleted' AND role IS NOT NULL ORDER BY role"
                )
            ]
            tags = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT j.value FROM memories m, json_each(m.tags) j WHERE m.status != 'deleted' ORDER BY j.value"
                )
            ]
        return roles, tags

    def entity_keys(self) -> dict[str, str]:
        """Every entity key a live (active or archived) memory names, with one display name.

        Only live memories have rows in ``memory_entities`` (a delete removes them, a purge's
        trigger too, an import writes none for deleted records), so the index on
        ``(norm, name)`` answers alone, without reading a memory.
        """
        with self._read() as conn:
            return dict(conn.execute("SELECT norm, min(name) FROM memory_entities GROUP BY norm").fetchall())

    def top_entities(self, limit: int) -> list[tuple[str, int]]:
        """The entities live memories name most, ``(display name, memories)``, most named first.

        Like ``entity_keys``, read from ``memory_entities`` alone (only live memories have rows there).
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT min(name), count(DISTINCT memory_rowid) AS n FROM memory_entities GROUP BY norm "
                "ORDER BY n DESC, norm LIMIT ?",
                (limit,),
            ).fetchall()
        return [(name, count) for name, count in rows]

    def entity_key_delta(self, since: tuple[int, str] | None) -> tuple[tuple[int, str], set[str], bool]:
        """The entity keys to know since the state ``since`` (``(change seq, entity epoch)`` from an
        earlier call): ``(state now, keys, whole)``.

        ``whole``: every key of the cube (nothing was read before, or entity rows left since:
        a delete, an update of entities, a purge). Otherwise only the keys of the memories
        written since, read through the change sequence's index: an add costs a few rows,
        not a pass over every entity row of the cube.
        """
        with self._read() as conn:
            meta = dict(conn.execute("SELECT key, value FROM cube_meta WHERE key IN ('change_seq', 'entity_epoch')").fetchall())
            now = (int(meta["change_seq"]), str(meta.get("entity_epoch", "0")))
            if since is None or since[1] != now[1] or since[0] > now[0]:
                return now, {k for (k,) in conn.execute("SELECT DISTINCT norm FROM memory_entities")}, True
            if since[0] == now[0]:
                return now, set(), False
            rows = conn.execute(
                # CROSS JOIN keeps SQLite on the change-sequence index (the few rows written since).
                "SELECT DISTINCT e.norm FROM memories m CROSS JOIN memory_entities e ON e.memory_rowid = m.row_id WHERE m.seq > ?",
                (since[0],),
            ).fetchall()
            return now, {k for (k,) in rows}, False

    def ensure_vector_table(self, model_id: str, dim: int) -> bool:
        """Make the vector table for this model; True when the cube held another model's vectors."""
        with self.write() as conn:
            current = conn.execute("SELECT value FROM cube_meta WHERE key = 'embedding_model'").fetchone()
            current_dim = conn.execute("SELECT value FROM cube_meta WHERE key = 'embedding_dim'").fetchone()
            changed = current is not None and current[0] != model_id
            if current_dim is not None and int(current_dim[0]) != dim:
                conn.execute("DROP TABLE IF EXISTS memory_vec")
            schema.create_vector_table(conn, dim)
            self.set_meta(conn, "embedding_model", model_id)
            self.set_meta(conn, "embedding_dim", str(dim))
            if changed:
                conn.execute("UPDATE cube_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'vector_epoch'")
        return changed

    # -- reads ----------------------------------------------------------------------

    def get_many(self, ids: Sequence[str], *, include_deleted: bool = True) -> list[Memory]:
        check_ids(ids)
        with self._lock:
            placeholders = ",".join("?" * len(ids))
            rows = self._conn.execute(f"SELECT {MEMORY_COLUMNS} FROM memories WHERE id IN ({placeholders})", list(ids)).fetchall()
        by_id = {row[1]: row for row in rows if include_deleted or row[5] != "deleted"}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise NotFound(
                f"no memory {', '.join(missing[:10])} in cube '{self.cube}'"
                + (" (it was deleted)" if any(r[1] in missing for r in rows) else "")
            )
        memories = [row_to_memory(self.cube, by_id[i]) for i in ids]
        self._attach_feedback(memories)
        return memories

    def _attach_feedback(self, memories: Sequence[Memory]) -> None:
        tasks = [m for m in memories if m.type == "task"]
        if not tasks:
            return
        with self._lock:
            placeholders = ",".join("?" * len(tasks))
            rows = self._conn.execute(
                f"SELECT memory_id, at, tried, result, client FROM memory_feedback WHERE memory_id IN ({placeholders}) ORDER BY seq",
                [m.id for m in tasks],
            ).fetchall()
        by_id = {m.id: m for m in tasks}
        for memory_id, at, tried, result, client in rows:
            by_id[memory_id].feedback.append(FeedbackEntry(at=at, tried=tried, result=result, client=client))

    def get_by_row_ids(self, row_ids: Sequence[int]) -> dict[int, Memory]:
        if not row_ids:
            return {}
        with self._lock:
            placeholders = ",".join("?" * len(row_ids))
            rows = self._conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories WHERE row_id IN ({placeholders})", list(row_ids)
            ).fetchall()
        return {row[0]: row_to_memory(self.cube, row) for row in rows}

    @contextmanager
    def search_view(self) -> Iterator[SearchView]:
        """One consistent snapshot for the several reads of a search."""
        with self._read() as conn:
            yield SearchView(conn)

    @contextmanager
    def side_view(self) -> Iterator[SearchView]:
        """A ``SearchView`` on a second connection, so a search can run two statements at once.

        It is its own snapshot: a write that commits between the two views' starts is seen by
        one only (harmless for ranking: the hits are read again, once, at the end).
        """
        with self._side_lock:
            if self._side_conn is None:
                # Not memory.db if it was replaced under this process: the copy of what it sees (file_watch).
                if (path := self._files.read_path) is None:
                    raise Unavailable(f"{self.path} went away under this server and is not saved yet: searching waits for it")
                self._side_conn = db.connect(path)
            conn = self._side_conn
            conn.execute("BEGIN")
            try:
                yield SearchView(conn)
            finally:
                conn.execute("COMMIT")

    def sync_mirror(self, mirror: VectorMirror) -> None:
        """Bring an in-RAM vector mirror up to the last committed change."""
        with self._read() as conn:
            mirror.sync(conn)

    def hit_rows(self, row_ids: Sequence[int]) -> dict[int, HitRow]:
        """What a search hit shows, by row id: ``(id, text, type, tags, occurred_at, created_at, status, state, due_at, parent_id)``.

        Not whole memories, and ``tags`` as stored (JSON text): a search reads its best few
        dozen rows for the ranking priors and parses only the hits it returns.
        """
        if not row_ids:
            return {}
        with self._lock:
            found = self._conn.execute(
                "SELECT row_id, id, text, type, tags, occurred_at, created_at, status, state, due_at, parent_id FROM memories "
                f"WHERE row_id IN ({','.join('?' * len(row_ids))})",
                list(row_ids),
            ).fetchall()
        return {row[0]: row[1:] for row in found}

    def thread_neighbours_of(self, ids: Sequence[str], turns: int, statuses: tuple[str, ...]) -> list[tuple[str, int, int]]:
        """For each memory, its live thread neighbours as ``(memory id, neighbour row id, offset)``, offset < 0 before it."""
        if not ids:
            return []
        with self._read() as conn:
            rows = dict(
                conn.execute(f"SELECT id, row_id FROM memories WHERE id IN ({','.join('?' * len(ids))})", list(ids)).fetchall()
            )
            return context.neighbours_by_id(
                ids, rows, lambda row_id: context.thread_neighbours(conn, row_id, turns, turns, statuses)
            )

    def nearest(self, vector: np.ndarray, k: int, *, include_archived: bool = False) -> list[tuple[int, float]]:
        """The ``k`` nearest memories by sqlite-vec's own KNN: the reference the RAM mirror is held to."""
        with self._lock:
            return sqlite_vec_knn(self._conn, vector, k, include_archived=include_archived)

    def row_ids_of(self, ids: Sequence[str]) -> list[int]:
        if not ids:
            return []
        with self._lock:
            placeholders = ",".join("?" * len(ids))
            return [r[0] for r in self._conn.execute(f"SELECT row_id FROM memories WHERE id IN ({placeholders})", list(ids))]

    def vector_of(self, memory_id: str) -> np.ndarray | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT v.embedding FROM memories m JOIN memory_vec v ON v.rowid = m.row_id WHERE m.id = ?", (memory_id,)
            ).fetchone()
        return np.frombuffer(row[0], dtype=np.float32) if row else None

    def judging_rows(self, row_ids: Sequence[int]) -> list[tuple[int, str, str, str, str | None, str | None, list[str]]]:
        """``(row_id, id, text, type, role, subject, entities)`` of these memories, in row order: what
        ``memory.supersession`` reads to judge a new fact or preference against them."""
        if not row_ids:
            return []
        with self._lock:
            found = self._conn.execute(
                f"SELECT row_id, id, text, type, role, subject, entities FROM memories WHERE row_id IN ({','.join('?' * len(row_ids))}) "
                "ORDER BY row_id",
                list(row_ids),
            ).fetchall()
        return [(r, i, t, ty, ro, su, json.loads(e or "[]")) for r, i, t, ty, ro, su, e in found]

    def goals_and_tasks(self, states: Sequence[str], role: str | None) -> list[Memory]:
        """Active goals and tasks in these states (with a role: that role's and those without one), open ones first."""
        where, params = goals_and_tasks_query(states, role, SQLITE)
        with self._lock:
            ids = [r[0] for r in self._conn.execute(f"SELECT id FROM memories WHERE {where}", params)]
        return self.get_many(ids) if ids else []

    def live_versions(self) -> dict[str, int]:
        """The version of every active memory, by id (what a KV cache is checked against)."""
        with self._read() as conn:
            return dict(conn.execute("SELECT id, version FROM memories WHERE status = 'active'").fetchall())

    def profile_sections(self, *, role: str | None, now: str, horizon: str, done_since: str, top_facts: int) -> ProfileRows:
        """The memories each section of the profile draws from, in the section's order (``read_rules.profile_sections``)."""

        def load(where: str, params: list[object], order: str, limit: int) -> list[Memory]:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT {MEMORY_COLUMNS} FROM memories WHERE {where} ORDER BY {order} LIMIT ?", [*params, limit]
                ).fetchall()
            memories = [row_to_memory(self.cube, row) for row in rows]
            self._attach_feedback(memories)
            return memories

        return profile_sections(load, SQLITE, role=role, now=now, horizon=horizon, done_since=done_since, top_facts=top_facts)

    # -- maintenance (memcube doctor) ---------------------------------------------------

    def integrity(self) -> str:
        with self._lock:
            return maintenance.integrity(self._conn)

    def drift(self, table: maintenance.DerivedTable) -> tuple[int, int]:
        """(memories missing a row in a derived table, stray rows in it)."""
        with self._lock:
            return maintenance.drift(self._conn, table)

    def rebuild_fts(self) -> None:
        with self.write() as conn:
            maintenance.rebuild_fts(conn)

    def rebuild_context_windows(self) -> None:
        with self.write() as conn:
            maintenance.rebuild_context_windows(conn)

    def status_count_drift(self) -> dict[str, tuple[int, int]]:
        with self._lock:
            return maintenance.status_count_drift(self._conn)

    def recount_statuses(self) -> None:
        with self.write() as conn:
            maintenance.recount_statuses(conn)

    def drop_stray_vectors(self) -> None:
        with self.write() as conn:
            maintenance.drop_stray_vectors(conn)

    def merge_fulltext(self, *, force: bool = False) -> bool:
        """Merge each full-text index into one b-tree, in short steps, when the cube has grown
        enough since the last merge (``force``: whatever its growth); True when it merged."""
        with self._lock:
            if not force and not fulltext_merge.due(self._conn):
                return False
            at_row = fulltext_merge.highest_row(self._conn)
        for table in fulltext_merge.TABLES:
            first = more = True
            while more:  # the lock is let go between steps: a write or a search waits for one step at most
                with self.write() as conn:
                    more = fulltext_merge.step(conn, table, first=first)
                first = False
        with self.write() as conn:
            fulltext_merge.mark_merged(conn, at_row)
        return True

    def import_rows(self, items: Sequence[ImportRow], run: ImportRun) -> list[str]:
        """Store archived memories as they were (ids, times, status, history) in one transaction, in
        bulk statements (``memory.store.bulk_import``; the store writes the same rows through
        ``MemoryWriter.import_rows``).

        Each gets an ``import`` version carrying ``run.note``. Returns, per item, "imported",
        "imported with vector", "existing" (the id is taken) or "duplicate" (a live memory
        has the same text). ``run.unfinished`` names the import in the cube until ``finish_import``.
        """
        with self.write() as conn:
            if run.unfinished is not None:
                settings.set_meta(conn, UNFINISHED_KEY, unfinished_value(run.unfinished))
            return bulk_import.insert(
                conn,
                items,
                seq=SqliteWriteTables(self.cube, conn, self.changes).next_seq(),
                model_id=run.model_id,
                client=run.client,
                note=run.note,
                at=run.at,
                changes=self.changes,
            )

    @contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """A larger page cache on this connection while a bulk import runs (see ``bulk_import``)."""
        with self._lock:
            before = bulk_import.enlarge_cache(self._conn)
        try:
            yield
        finally:
            with self._lock:
                bulk_import.restore_cache(self._conn, before)

    def import_known(self, ids: Sequence[str], hashes: Sequence[str]) -> tuple[set[str], set[str]]:
        """(those of ``ids`` already in the cube, those of ``hashes`` a live memory has): what an import would skip."""
        with self._read() as conn:
            return bulk_import.known(conn, ids, hashes)

    def unfinished_import(self) -> dict[str, Any] | None:
        """The import that began writing into this cube and did not finish (killed), if any."""
        with self._lock:
            return unfinished_from(settings.meta(self._conn, UNFINISHED_KEY))

    def finish_import(self) -> None:
        with self.write() as conn:
            settings.set_meta(conn, UNFINISHED_KEY, None)

    def raw_memory_rows(self) -> list[tuple[Any, ...]]:
        """Every memory row as stored (``MEMORY_COLUMNS``), unparsed: for repairs of rows no reader can serve."""
        with self._lock:
            return self._conn.execute(f"SELECT {MEMORY_COLUMNS} FROM memories").fetchall()

    def repair_rows(self, fixes: Sequence[tuple[int, str, int, dict[str, Any], dict[str, Any]]], *, client: str) -> None:
        """Write repaired column values ``(row_id, memory id, version, {column: stored value}, changes)``, each a version."""
        now = now_stored()
        with self.write() as conn:
            tables = SqliteWriteTables(self.cube, conn, self.changes)
            for row_id, memory_id, version, new, changes in fixes:
                unknown = [k for k in new if k not in FIELDS]
                if unknown:
                    raise ValueError(f"not columns of memories: {unknown}")
                sets = ", ".join(f"{k} = ?" for k in new)
                conn.execute(f"UPDATE memories SET {sets}, version = ? WHERE row_id = ?", [*new.values(), version + 1, row_id])
                if "entities" in new:
                    tables.drop_entities(row_id)
                    tables.insert_entities(row_id, entity_rows(json.loads(new["entities"])))
                tables.record(memory_id, version + 1, "repair", now, client, changes)
                tables.queue([memory_id])

    # -- the change log (graph outbox): see ``self.changes``, and ``GraphOutbox`` -----

    def graph_member_ids(self) -> list[str]:
        """Memories that have a node in the graph: active ones, and superseded ones (the far end of a SUPERSEDES link)."""
        with self._lock:
            return [r[0] for r in self._conn.execute(f"SELECT id FROM memories WHERE {IN_GRAPH}").fetchall()]

    def known_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` this database has a row or a version of (a purge leaves a version): for doctor (issue 26)."""
        with self._lock:
            return {
                r[0]
                for r in self._conn.execute(
                    "SELECT j.value FROM json_each(?) j WHERE EXISTS (SELECT 1 FROM memories WHERE id = j.value) "
                    "OR EXISTS (SELECT 1 FROM memory_versions WHERE memory_id = j.value)",
                    (json.dumps(list(ids)),),
                )
            }

    def graph_rows(self, ids: Sequence[str]) -> dict[str, GraphRow]:
        """What the graph derives from each memory."""
        if not ids:
            return {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, status, type, entities, relations, supersedes, superseded_by, "
                "coalesce(occurred_at, created_at), updated_at, row_id FROM memories "
                f"WHERE id IN ({','.join('?' * len(ids))})",
                list(ids),
            ).fetchall()
            found = self._conn.execute(
                "SELECT memory_rowid, source, type, target, ended FROM memory_relations "
                "WHERE memory_rowid IN (SELECT value FROM json_each(?))",
                (json.dumps([r[9] for r in rows]),),
            ).fetchall()
        return graph_rows_of(rows, found)

    # -- access counts and re-embedding -----------------------------------------------

    def add_access(self, counts: dict[int, int]) -> None:
        """Add reads to memories' access counts (not a version: reading changes no content)."""
        if not counts:
            return
        now = now_stored()
        with self.write() as conn:
            conn.executemany(
                "UPDATE memories SET access_count = access_count + ?, last_access = ? WHERE row_id = ?",
                [(n, now, row_id) for row_id, n in counts.items()],
            )

    def forget_embedding_models(self) -> None:
        """Mark every live memory's vector as stale, so the next ``stale_embeddings`` returns them all."""
        with self.write() as conn:
            conn.execute("UPDATE memories SET embedding_model = NULL WHERE status != 'deleted'")

    def recent(self, limit: int = 20, status: MemoryStatus = "active") -> list[Memory]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories WHERE status = ? ORDER BY created_at DESC, row_id DESC LIMIT ?",
                (status, limit),
            ).fetchall()
        return [row_to_memory(self.cube, row) for row in rows]

    def iter_all(self, batch: int = 500) -> Iterator[Memory]:
        def read(after: int) -> list[Any]:
            with self._lock:
                return self._conn.execute(
                    f"SELECT {MEMORY_COLUMNS} FROM memories WHERE row_id > ? ORDER BY row_id LIMIT ?", (after, batch)
                ).fetchall()

        for row in by_row_id(read):
            yield row_to_memory(self.cube, row)

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        check_ids([memory_id])
        with self._lock:
            rows = self._conn.execute(
                "SELECT version, op, at, client, changes FROM memory_versions WHERE memory_id = ? ORDER BY seq", (memory_id,)
            ).fetchall()
        if not rows:
            raise NotFound(f"no memory {memory_id} in cube '{self.cube}'")
        return [{"version": v, "op": op, "at": at, "client": c, "changes": json.loads(ch)} for v, op, at, c, ch in rows]

    def all_versions(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every version row of the cube, oldest first, as ``(memory id, {version, op, at, client, changes})``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT memory_id, version, op, at, client, changes FROM memory_versions ORDER BY seq"
            ).fetchall()
        for memory_id, version, op, at, client, changes in rows:
            yield memory_id, {"version": version, "op": op, "at": at, "client": client, "changes": json.loads(changes)}

    def entity_mentions(self, *, include_deleted: bool = False) -> list[tuple[str, str, str]]:
        """``(entity key, display name, memory id)`` for every entity a memory names, by key then memory."""
        with self._lock:
            return self._conn.execute(
                "SELECT e.norm, e.name, m.id FROM memory_entities e JOIN memories m ON m.row_id = e.memory_rowid "
                + ("" if include_deleted else "WHERE m.status != 'deleted' ")
                + "ORDER BY e.norm, m.row_id"
            ).fetchall()

    # -- export (moving the cube to another engine: memory.store.postgres.cube_copy) -------

    def export_changed_memories(self, after: tuple[int, int], limit: int) -> export.MemoryBatch:
        with self._read() as conn:
            return export.changed_memories(conn, after, limit)

    def export_log(self, table: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            return export.log_batch(conn, table, after_seq, limit)

    def export_thread_context(self, threads: list[str]) -> list[tuple[str, str | None]]:
        with self._read() as conn:
            return export.thread_context(conn, threads)

    def export_settings(self) -> dict[str, str | None]:
        with self._read() as conn:
            return export.settings(conn)

    def export_totals(self) -> dict[str, int]:
        with self._read() as conn:
            return export.totals(conn)

    def stored_vectors(self) -> list[tuple[str, np.ndarray]]:
        """``(memory id, vector)`` of every memory that has one, in row order."""
        with self._lock:
            if not self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'memory_vec'").fetchone():
                return []  # a cube that never embedded anything
            rows = self._conn.execute(
                "SELECT m.id, v.embedding FROM memories m JOIN memory_vec v ON v.rowid = m.row_id ORDER BY m.row_id"
            ).fetchall()
        return [(memory_id, np.frombuffer(blob, dtype=np.float32)) for memory_id, blob in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            by_status = dict(self._conn.execute("SELECT status, n FROM memory_status_counts").fetchall())
            entities = self._conn.execute("SELECT count(DISTINCT norm) FROM memory_entities").fetchone()[0]
            relations = self._conn.execute(
                "SELECT coalesce(sum(json_array_length(relations)), 0) FROM memories WHERE status = 'active'"
            ).fetchone()[0]
            pending = self.changes.count()
        return {
            "active": by_status.get("active", 0),
            "archived": by_status.get("archived", 0),
            "deleted": by_status.get("deleted", 0),
            "entities": entities,
            "relations": relations,
            "graph_pending": pending,
        }

    def stale_embeddings(self, model_id: str, limit: int) -> list[tuple[int, str]]:
        with self._lock:
            return self._conn.execute(
                "SELECT row_id, text FROM memories WHERE status != 'deleted' AND "
                "(embedding_model IS NULL OR embedding_model != ?) ORDER BY row_id LIMIT ?",
                (model_id, limit),
            ).fetchall()

    # -- writes ---------------------------------------------------------------------

    def purge(self, ids: Sequence[str], *, client: str | None) -> None:
        """Erase memories for good (``MemoryWriter.purge``), then scrub what SQLite keeps of erased text."""
        super().purge(ids, client=client)
        self._scrub()

    def _scrub(self) -> None:
        """Make erased text unrecoverable: FTS5 keeps deleted terms in old index segments until a
        merge, and the WAL keeps old pages until a checkpoint. (secure_delete zeroes freed pages.)"""
        with self._lock:
            for table in ("memory_fts", "memory_context_fts"):
                if self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
                    self._conn.execute(f"INSERT INTO {table}({table}) VALUES ('optimize')")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def record_denial(self, *, client: str | None, action: str, need: str) -> None:
        """Keep a refused call (``read_rules.kept_denial``), the newest ``MAX_DENIALS`` only."""
        with self.write() as conn:
            cursor = conn.execute(
                "INSERT INTO access_denials(at, client, action, need) VALUES (?, ?, ?, ?)",
                (now_stored(), *kept_denial(client, action, need)),
            )
            conn.execute("DELETE FROM access_denials WHERE seq <= ?", ((cursor.lastrowid or 0) - MAX_DENIALS,))

    def denials(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT at, client, action, need FROM access_denials ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [{"at": at, "client": client, "action": action, "need": need} for at, client, action, need in rows]

    # -- browsing (the web UI, issue 14) --------------------------------------------

    def page(
        self, browse: BrowseFilter, *, after: tuple[str, int] | None, limit: int
    ) -> tuple[list[Memory], tuple[str, int] | None]:
        """One page of memories, newest first, and the cursor of the next page (None at the end): ``browse.page_query``."""
        statement, params = page_query(browse, MEMORY_COLUMNS, after=after, limit=limit)
        with self._lock:
            rows, cursor = page_end(self._conn.execute(statement, params).fetchall(), limit)
        memories = [row_to_memory(self.cube, row) for row in rows]
        self._attach_feedback(memories)
        return memories, cursor

    def count_matching(self, browse: BrowseFilter) -> int:
        statement, params = count_query(browse)
        with self._lock:
            return int(self._conn.execute(statement, params).fetchone()[0])

    def facets(self) -> dict[str, list[str]]:
        """The types, roles and tags in use among memories not deleted, for filter menus."""
        with self._lock:
            types = [
                r[0] for r in self._conn.execute("SELECT DISTINCT type FROM memories WHERE status != 'deleted' ORDER BY type")
            ]
            roles = [
                r[0]
                for r in self._conn.execute(
                    "SELECT DISTINCT role FROM memories WHERE role IS NOT NULL AND status != 'deleted' ORDER BY role"
                )
            ]
            tags = [
                r[0]
                for r in self._conn.execute(
                    "SELECT DISTINCT j.value FROM memories m, json_each(m.tags) j WHERE m.status != 'deleted' ORDER BY j.value LIMIT 500"
                )
            ]
        return {"types": types, "roles": roles, "tags": tags}

    def client_activity(self) -> list[dict[str, Any]]:
        """Per client and operation: how many changes it made and when it last did."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT client, op, count(*), max(at) FROM memory_versions GROUP BY client, op ORDER BY max(at) DESC"
            ).fetchall()
        return [{"client": c, "op": op, "count": n, "last": at} for c, op, n, at in rows]

    def recent_changes(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last changes of the cube, newest first: ``{memory_id, version, op, at, client}``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT memory_id, version, op, at, client FROM memory_versions ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [{"memory_id": m, "version": v, "op": op, "at": at, "client": c} for m, v, op, at, c in rows]

    def unread_relations(self, limit: int) -> tuple[list[tuple[int, str]], int]:
        """Memories written before relations were read from texts (schema 11) that still wait for it:
        up to ``limit`` (row id, text) of live memories without client relations, and how many are left."""
        with self._lock:
            below = self.meta("relations_unread_below")
            if below is None:
                return [], 0
            rows = self._conn.execute(
                "SELECT row_id, text FROM memories WHERE row_id < ? AND status != 'deleted' AND relations = '[]' "
                "AND NOT EXISTS (SELECT 1 FROM memory_relations r WHERE r.memory_rowid = row_id) "
                "AND row_id >= coalesce((SELECT CAST(value AS INTEGER) FROM cube_meta WHERE key = 'relations_unread_from'), 0) "
                "ORDER BY row_id LIMIT ?",
                (int(below), limit),
            ).fetchall()
            return [(r[0], r[1]) for r in rows], len(rows)

    def save_read_relations(self, rows: Sequence[tuple[int, list[dict[str, Any]]]], *, done: bool) -> None:
        """Store relations read from older memories (``unread_relations``) and queue their graph work;
        ``done``: none are left, drop the mark."""
        with self.write() as conn:
            tables = SqliteWriteTables(self.cube, conn, self.changes)
            for row_id, relations in rows:
                tables.insert_relations(row_id, relation_rows(relations))
                if relations:
                    self.changes.queue_rows(conn, [row_id])
            if rows:
                self.set_meta(conn, "relations_unread_from", str(max(r for r, _ in rows) + 1))
            if done:
                conn.execute("DELETE FROM cube_meta WHERE key IN ('relations_unread_below', 'relations_unread_from')")

    def relation_peers(self, keys: Sequence[tuple[str, str]]) -> list[RelationPeer]:
        """The relations of live memories (read from texts, or given by clients) with these (source, type)."""
        if not keys:
            return []
        wanted = json.dumps([list(k) for k in sorted(set(keys))])
        at = "coalesce(m.occurred_at, m.created_at)"
        with self._lock:
            rows = self._conn.execute(
                "WITH k AS (SELECT json_extract(value, '$[0]') AS s, json_extract(value, '$[1]') AS t FROM json_each(?)) "
                f"SELECT r.source_norm, r.type, r.target_norm, m.id, {at}, r.ended FROM k "
                "JOIN memory_relations r ON r.source_norm = k.s AND r.type = k.t "
                "JOIN memories m ON m.row_id = r.memory_rowid WHERE m.status = 'active' AND m.relations = '[]'",
                (wanted,),
            ).fetchall()
            client = self._conn.execute(
                f"SELECT m.id, {at}, j.value FROM memories m, json_each(m.relations) j "
                "WHERE m.status = 'active' AND m.relations != '[]'"
            ).fetchall()
        return relation_peers_of(rows, client, keys)


def relation_peers_of(
    extracted: Iterable[Sequence[Any]], client: Iterable[Sequence[Any]], keys: Sequence[tuple[str, str]]
) -> list[RelationPeer]:
    """``relation_peers`` from what either engine reads: the relations read from texts that match a key,
    ``(source norm, type, target norm, memory id, at, ended)``, and every client relation of a live
    memory, ``(memory id, at, relation as JSON text)``, kept where its normalised (subject, predicate) is a key."""
    peers = [RelationPeer(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in extracted]
    key_set = set(keys)
    for memory_id, when, value in client:
        rel = json.loads(value)
        source = normalize(rel["subject"])
        if (source, rel["predicate"]) in key_set:
            target = normalize(rel["object"])
            peers.append(RelationPeer(source, rel["predicate"], target, memory_id, rel.get("valid_from") or when, False))
    return peers


def graph_rows_of(rows: Iterable[Sequence[Any]], extracted: Iterable[Sequence[Any]]) -> dict[str, GraphRow]:
    """``graph_rows`` from what either engine reads: memory rows ``(id, status, type, entities JSON,
    relations JSON, supersedes, superseded_by, at, updated_at, row id)`` and their relations read
    from texts, ``(row id, source, type, target, ended)`` in the order each memory lists them."""
    by_row: dict[int, list[dict[str, Any]]] = {}
    for row_id, source, type_, target, ended in extracted:
        by_row.setdefault(row_id, []).append({"source": source, "type": type_, "target": target, "ended": bool(ended)})
    return {
        r[0]: GraphRow(
            id=r[0],
            status=r[1],
            type=r[2],
            entities=json.loads(r[3] or "[]"),
            relations=json.loads(r[4] or "[]"),
            supersedes=r[5],
            superseded_by=r[6],
            extracted=by_row.get(r[9], []),
            at=r[7],
            updated_at=r[8],
        )
        for r in rows
    }
