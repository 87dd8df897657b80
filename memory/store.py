"""The cube's SQLite file: memories, their versions, entities, FTS and vectors.

SQLite is the source of truth. Every write runs in one ``BEGIN IMMEDIATE`` transaction
that changes the memory row, appends its version row, writes or drops its vector,
records its entities, queues the graph work (``graph_outbox``) and stamps the rows with
the next change sequence. The FTS index follows the rows through triggers. So a reader
in any process sees either all of a change or none of it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import context, db, schema
from .entities import normalize
from .errors import Conflict, InvalidInput, NotFound
from .file_watch import FileWatch, disk_full, full_disk_error
from .ids import is_memory_id, new_memory_id
from .models import SUPERSEDING_TYPES, FeedbackEntry, Memory, MemoryStatus, RelationOut
from .timeutil import now_stored

MEMORY_COLUMNS = (
    "row_id, id, text, kind, type, status, tags, entities, relations, source, client, user_id, agent_id, "
    "session_id, created_at, updated_at, occurred_at, valid_from, valid_to, version, importance, confidence, "
    "access_count, last_access, content_hash, embedding_model, metadata, "
    "role, subject, state, due_at, parent_id, supersedes, superseded_by"
)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class NewMemory:
    """A memory ready to be written: validated, entities resolved, vector computed."""

    text: str
    type: str
    tags: list[str]
    entities: list[str]
    relations: list[dict[str, Any]]
    occurred_at: str | None
    metadata: dict[str, Any]
    importance: float
    confidence: float
    source: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    role: str | None = None
    subject: str | None = None  # normalised subject key
    state: str | None = None
    due_at: str | None = None
    parent_id: str | None = None
    # Live memories the cube matched as saying the same thing about the same subject (no key given).
    supersede: list[str] = field(default_factory=list)
    vector: np.ndarray | None = None
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        self.hash = content_hash(self.text)


def _loads(value: str | None, default: Any) -> Any:
    return json.loads(value) if value else default


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def row_to_memory(cube: str, row: sqlite3.Row | tuple) -> Memory:
    (
        _row_id, id_, text, kind, type_, status, tags, entities, relations, source, client, user_id, agent_id,
        session_id, created_at, updated_at, occurred_at, valid_from, valid_to, version, importance, confidence,
        access_count, last_access, hash_, embedding_model, metadata,
        role, subject, state, due_at, parent_id, supersedes, superseded_by,
    ) = row
    return Memory(
        id=id_, cube=cube, text=text, kind=kind, type=type_, status=status,
        tags=_loads(tags, []), entities=_loads(entities, []),
        relations=[RelationOut(**r) for r in _loads(relations, [])],
        source=source, client=client, user_id=user_id, agent_id=agent_id, session_id=session_id,
        created_at=created_at, updated_at=updated_at, occurred_at=occurred_at,
        valid_from=valid_from, valid_to=valid_to, version=version, importance=importance,
        confidence=confidence, access_count=access_count, last_access=last_access,
        content_hash=hash_, embedding_model=embedding_model, metadata=_loads(metadata, {}),
        role=role, subject=subject, state=state, due_at=due_at, parent_id=parent_id,
        supersedes=supersedes, superseded_by=superseded_by,
    )


def check_ids(ids: Sequence[str]) -> None:
    bad = [i for i in ids if not is_memory_id(i)]
    if bad:
        shown = ", ".join(repr(b)[:60] for b in bad[:5])
        raise InvalidInput(f"not a memory id: {shown}; ids look like 'mem_01jc3...' (as returned by memory_add)")


class CubeStore:
    """One cube's ``memory.db``. Methods are blocking; call them from worker threads."""

    def __init__(self, cube: str, path: Path) -> None:
        self.cube = cube
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = db.connect(path)
        self.lock = threading.RLock()
        schema.migrate(self.conn)
        self.files = FileWatch(path)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # -- transactions ---------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before any read so writers queue instead of deadlocking."""
        with self.lock:
            self.files.check()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            except Exception as exc:
                if disk_full(exc):
                    raise full_disk_error(self.path) from exc
                raise
            self.files.check()  # a commit into a file already deleted is lost: say so now

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several statements."""
        with self.lock:
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute(
            "UPDATE cube_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'change_seq' RETURNING value"
        ).fetchone()[0])

    # -- metadata -------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM cube_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT INTO cube_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

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
        with self.lock:
            placeholders = ",".join("?" * len(ids))
            rows = self.conn.execute(f"SELECT {MEMORY_COLUMNS} FROM memories WHERE id IN ({placeholders})", list(ids)).fetchall()
        by_id = {row[1]: row for row in rows if include_deleted or row[5] != "deleted"}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise NotFound(f"no memory {', '.join(missing[:10])} in cube '{self.cube}'" + (" (it was deleted)" if any(r[1] in missing for r in rows) else ""))
        memories = [row_to_memory(self.cube, by_id[i]) for i in ids]
        self._attach_feedback(memories)
        return memories

    def _attach_feedback(self, memories: Sequence[Memory]) -> None:
        tasks = [m for m in memories if m.type == "task"]
        if not tasks:
            return
        with self.lock:
            placeholders = ",".join("?" * len(tasks))
            rows = self.conn.execute(
                f"SELECT memory_id, at, tried, result, client FROM memory_feedback WHERE memory_id IN ({placeholders}) ORDER BY seq",
                [m.id for m in tasks],
            ).fetchall()
        by_id = {m.id: m for m in tasks}
        for memory_id, at, tried, result, client in rows:
            by_id[memory_id].feedback.append(FeedbackEntry(at=at, tried=tried, result=result, client=client))

    def get_by_row_ids(self, row_ids: Sequence[int]) -> dict[int, Memory]:
        if not row_ids:
            return {}
        with self.lock:
            placeholders = ",".join("?" * len(row_ids))
            rows = self.conn.execute(f"SELECT {MEMORY_COLUMNS} FROM memories WHERE row_id IN ({placeholders})", list(row_ids)).fetchall()
        return {row[0]: row_to_memory(self.cube, row) for row in rows}

    def recent(self, limit: int = 20, status: MemoryStatus = "active") -> list[Memory]:
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories WHERE status = ? ORDER BY created_at DESC, row_id DESC LIMIT ?",
                (status, limit),
            ).fetchall()
        return [row_to_memory(self.cube, row) for row in rows]

    def iter_all(self, batch: int = 500) -> Iterator[Memory]:
        last = 0
        while True:
            with self.lock:
                rows = self.conn.execute(f"SELECT {MEMORY_COLUMNS} FROM memories WHERE row_id > ? ORDER BY row_id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            for row in rows:
                yield row_to_memory(self.cube, row)
            last = rows[-1][0]

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        check_ids([memory_id])
        with self.lock:
            rows = self.conn.execute(
                "SELECT version, op, at, client, changes FROM memory_versions WHERE memory_id = ? ORDER BY seq", (memory_id,)
            ).fetchall()
        if not rows:
            raise NotFound(f"no memory {memory_id} in cube '{self.cube}'")
        return [{"version": v, "op": op, "at": at, "client": c, "changes": json.loads(ch)} for v, op, at, c, ch in rows]

    def counts(self) -> dict[str, int]:
        with self.lock:
            by_status = dict(self.conn.execute("SELECT status, count(*) FROM memories GROUP BY status").fetchall())
            entities = self.conn.execute("SELECT count(DISTINCT norm) FROM memory_entities").fetchone()[0]
            relations = self.conn.execute(
                "SELECT coalesce(sum(json_array_length(relations)), 0) FROM memories WHERE status = 'active'"
            ).fetchone()[0]
            pending = self.conn.execute("SELECT count(*) FROM graph_outbox").fetchone()[0]
        return {
            "active": by_status.get("active", 0), "archived": by_status.get("archived", 0),
            "deleted": by_status.get("deleted", 0), "entities": entities, "relations": relations,
            "graph_pending": pending,
        }

    def stale_embeddings(self, model_id: str, limit: int) -> list[tuple[int, str]]:
        with self.lock:
            return self.conn.execute(
                "SELECT row_id, text FROM memories WHERE status != 'deleted' AND "
                "(embedding_model IS NULL OR embedding_model != ?) ORDER BY row_id LIMIT ?",
                (model_id, limit),
            ).fetchall()

    # -- writes ---------------------------------------------------------------------

    def add(self, items: Sequence[NewMemory], *, client: str | None, model_id: str | None) -> list[tuple[str, bool]]:
        """Insert memories; an exact duplicate of a live memory returns that memory's id instead."""
        outcomes: list[tuple[str, bool]] = []
        now = now_stored()
        with self.write() as conn:
            seq = self._next_seq(conn)
            batch_ids: dict[str, str] = {}
            created_rows: list[int] = []
            for item in items:
                existing = batch_ids.get(item.hash) or self._live_id_by_hash(conn, item.hash)
                if existing:
                    # Saying an archived memory again makes it current again (a new version, not a copy).
                    self._reactivate(conn, existing, now, client, seq)
                    outcomes.append((existing, False))
                    continue
                memory_id = new_memory_id()
                if item.parent_id is not None:
                    self._current(conn, item.parent_id)  # a task's goal must exist in this cube
                replaced = self._superseded_by_new(conn, item)
                row_id = conn.execute(
                    "INSERT INTO memories(id, text, kind, type, status, tags, entities, relations, source, client, "
                    "user_id, agent_id, session_id, created_at, updated_at, occurred_at, version, importance, "
                    "confidence, access_count, content_hash, embedding_model, metadata, seq, "
                    "role, subject, state, due_at, parent_id, supersedes) "
                    "VALUES (?, ?, 'plaintext', ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, 0, ?, ?, ?, ?, "
                    "?, ?, ?, ?, ?, ?) RETURNING row_id",
                    (
                        memory_id, item.text, item.type, _dumps(item.tags), _dumps(item.entities), _dumps(item.relations),
                        item.source, client, item.user_id, item.agent_id, item.session_id, now, now, item.occurred_at,
                        item.importance, item.confidence, item.hash,
                        model_id if item.vector is not None else None, _dumps(item.metadata), seq,
                        item.role, item.subject, item.state, item.due_at, item.parent_id, replaced[0] if replaced else None,
                    ),
                ).fetchone()[0]
                self._write_entities(conn, row_id, item.entities)
                if item.vector is not None:
                    conn.execute("INSERT INTO memory_vec(rowid, embedding) VALUES (?, ?)", (row_id, item.vector.astype(np.float32).tobytes()))
                changes = {
                    "text": {"old": None, "new": item.text}, "type": {"old": None, "new": item.type},
                    "tags": {"old": None, "new": item.tags}, "entities": {"old": None, "new": item.entities},
                    "relations": {"old": None, "new": item.relations}, "occurred_at": {"old": None, "new": item.occurred_at},
                    "metadata": {"old": None, "new": item.metadata}, "status": {"old": None, "new": "active"},
                }
                for key in ("role", "subject", "state", "due_at", "parent_id"):
                    if getattr(item, key) is not None:
                        changes[key] = {"old": None, "new": getattr(item, key)}
                if replaced:
                    changes["supersedes"] = {"old": None, "new": replaced[0]}
                self._record(conn, memory_id, 1, "add", now, client, changes)
                for old_id in replaced:
                    self._supersede(conn, old_id, memory_id, now, client, seq)
                conn.execute("INSERT INTO graph_outbox(memory_id, op) VALUES (?, 'sync')", (memory_id,))
                batch_ids[item.hash] = memory_id
                outcomes.append((memory_id, True))
                created_rows.append(row_id)
            context.refresh(conn, created_rows)
        return outcomes

    def update(
        self, memory_id: str, new_values: dict[str, Any], *, vector: np.ndarray | None, model_id: str | None, client: str | None
    ) -> Memory:
        """Apply changed fields as a new version. ``new_values`` holds plain Python values."""
        check_ids([memory_id])
        now = now_stored()
        with self.write() as conn:
            current = self._current(conn, memory_id)
            if current.status == "deleted":
                raise NotFound(f"memory {memory_id} was deleted; add it again instead of updating it")
            before = current.model_dump()
            changes: dict[str, dict[str, Any]] = {}
            for key, value in new_values.items():
                old = before[key] if key != "relations" else [r for r in before["relations"]]
                if old != value:
                    changes[key] = {"old": old, "new": value}
            if not changes:
                return current
            if "text" in changes:
                duplicate = self._live_id_by_hash(conn, content_hash(new_values["text"]))
                if duplicate and duplicate != memory_id:
                    raise Conflict(f"memory {duplicate} already holds exactly this text; update or delete that one instead")
            seq = self._next_seq(conn)
            assignments = {k: v["new"] for k, v in changes.items()}
            columns = {}
            for key, value in assignments.items():
                columns[key] = _dumps(value) if key in ("tags", "entities", "relations", "metadata") else value
            if "text" in assignments:
                columns["content_hash"] = content_hash(assignments["text"])
            if vector is not None:
                columns["embedding_model"] = model_id
            columns.update({"version": current.version + 1, "updated_at": now, "seq": seq})
            sets = ", ".join(f"{name} = ?" for name in columns)
            conn.execute(f"UPDATE memories SET {sets} WHERE id = ?", [*columns.values(), memory_id])
            row_id = conn.execute("SELECT row_id FROM memories WHERE id = ?", (memory_id,)).fetchone()[0]
            if vector is not None:
                conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (row_id,))
                conn.execute("INSERT INTO memory_vec(rowid, embedding) VALUES (?, ?)", (row_id, vector.astype(np.float32).tobytes()))
            if "entities" in assignments:
                conn.execute("DELETE FROM memory_entities WHERE memory_rowid = ?", (row_id,))
                self._write_entities(conn, row_id, assignments["entities"])
            if "text" in assignments or "occurred_at" in assignments:
                context.refresh(conn, [row_id])
            self._record(conn, memory_id, current.version + 1, "update", now, client, changes)
            conn.execute("INSERT INTO graph_outbox(memory_id, op) VALUES (?, 'sync')", (memory_id,))
            return self._current(conn, memory_id)

    def set_status(self, ids: Sequence[str], *, to: MemoryStatus, allowed_from: tuple[MemoryStatus, ...], op: str, client: str | None) -> list[Memory]:
        check_ids(ids)
        now = now_stored()
        with self.write() as conn:
            currents = [self._current(conn, i) for i in ids]
            wrong = [m for m in currents if m.status not in allowed_from]
            if wrong:
                detail = ", ".join(f"{m.id} is {m.status}" for m in wrong[:10])
                raise Conflict(f"cannot {op}: {detail} (only {' or '.join(allowed_from)} memories can be {op}d)".replace("archived", "archived"))
            seq = self._next_seq(conn)
            for memory in currents:
                try:
                    conn.execute(
                        "UPDATE memories SET status = ?, version = version + 1, updated_at = ?, seq = ? WHERE id = ?",
                        (to, now, seq, memory.id),
                    )
                except sqlite3.IntegrityError:
                    duplicate = self._live_id_by_hash(conn, memory.content_hash)
                    raise Conflict(f"cannot {op} {memory.id}: memory {duplicate} with the same text is live; delete it first") from None
                if to == "deleted":
                    row_id = conn.execute("SELECT row_id FROM memories WHERE id = ?", (memory.id,)).fetchone()[0]
                    conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (row_id,))
                    conn.execute("DELETE FROM memory_entities WHERE memory_rowid = ?", (row_id,))
                self._record(conn, memory.id, memory.version + 1, op, now, client, {"status": {"old": memory.status, "new": to}})
                conn.execute("INSERT INTO graph_outbox(memory_id, op) VALUES (?, 'sync')", (memory.id,))
            placeholders = ",".join("?" * len(ids))
            context.refresh(conn, [r[0] for r in conn.execute(f"SELECT row_id FROM memories WHERE id IN ({placeholders})", list(ids))])
            return [self._current(conn, i) for i in ids]

    def purge(self, ids: Sequence[str], *, client: str | None) -> None:
        """Erase memories for good: the row, its vector and entities go; one 'purge' version row stays as the trace."""
        check_ids(ids)
        now = now_stored()
        with self.write() as conn:
            currents = [self._current(conn, i) for i in ids]
            self._next_seq(conn)
            for memory in currents:
                row_id = conn.execute("SELECT row_id FROM memories WHERE id = ?", (memory.id,)).fetchone()[0]
                conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (row_id,))
                conn.execute("DELETE FROM memories WHERE id = ?", (memory.id,))
                # The content is erased from history too: purge means the text must not survive anywhere.
                conn.execute("UPDATE memory_versions SET changes = '{}' WHERE memory_id = ?", (memory.id,))
                self._record(conn, memory.id, memory.version + 1, "purge", now, client, {"status": {"old": memory.status, "new": None}})
                conn.execute("INSERT INTO graph_outbox(memory_id, op) VALUES (?, 'sync')", (memory.id,))
            context.refresh_threads(conn, [m.session_id for m in currents])
            conn.execute("UPDATE cube_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'vector_epoch'")
        self._scrub()

    def _scrub(self) -> None:
        """Make erased text unrecoverable: FTS5 keeps deleted terms in old index segments until a
        merge, and the WAL keeps old pages until a checkpoint. (secure_delete zeroes freed pages.)"""
        with self.lock:
            for table in ("memory_fts", "memory_context_fts"):
                if self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
                    self.conn.execute(f"INSERT INTO {table}({table}) VALUES ('optimize')")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def store_vectors(self, rows: Sequence[tuple[int, np.ndarray]], model_id: str) -> None:
        """Replace vectors (re-embedding after a model change)."""
        with self.write() as conn:
            seq = self._next_seq(conn)
            for row_id, vector in rows:
                conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (row_id,))
                conn.execute("INSERT INTO memory_vec(rowid, embedding) VALUES (?, ?)", (row_id, vector.astype(np.float32).tobytes()))
                conn.execute("UPDATE memories SET embedding_model = ?, seq = ? WHERE row_id = ?", (model_id, seq, row_id))

    def touch(self, row_ids: Sequence[int]) -> None:
        """Count an access (search hit or read). Not a version: reading changes no content."""
        if not row_ids:
            return
        now = now_stored()
        with self.write() as conn:
            conn.executemany("UPDATE memories SET access_count = access_count + 1, last_access = ? WHERE row_id = ?", [(now, r) for r in row_ids])

    # -- helpers --------------------------------------------------------------------

    def _superseded_by_new(self, conn: sqlite3.Connection, item: NewMemory) -> list[str]:
        """Active memories a new preference or fact replaces: same subject key and role, or matched by the cube."""
        if item.type not in SUPERSEDING_TYPES:
            return []
        found = list(item.supersede)
        if item.subject is not None:
            rows = conn.execute(
                "SELECT id FROM memories WHERE status = 'active' AND type = ? AND subject = ? AND role IS ? ORDER BY row_id",
                (item.type, item.subject, item.role),
            ).fetchall()
            found += [r[0] for r in rows]
        return list(dict.fromkeys(found))

    def _supersede(self, conn: sqlite3.Connection, old_id: str, new_id: str, now: str, client: str | None, seq: int) -> None:
        """Archive ``old_id`` in favour of ``new_id``: a new version of the old, never a silent overwrite."""
        old = self._current(conn, old_id)
        if old.status != "active":
            return
        conn.execute(
            "UPDATE memories SET status = 'archived', superseded_by = ?, version = version + 1, updated_at = ?, seq = ? WHERE id = ?",
            (new_id, now, seq, old_id),
        )
        self._record(
            conn, old_id, old.version + 1, "supersede", now, client,
            {"status": {"old": "active", "new": "archived"}, "superseded_by": {"old": None, "new": new_id}},
        )
        conn.execute("INSERT INTO graph_outbox(memory_id, op) VALUES (?, 'sync')", (old_id,))

    def _reactivate(self, conn: sqlite3.Connection, memory_id: str, now: str, client: str | None, seq: int) -> None:
        current = self._current(conn, memory_id)
        if current.status != "archived":
            return
        conn.execute(
            "UPDATE memories SET status = 'active', superseded_by = NULL, version = version + 1, updated_at = ?, seq = ? WHERE id = ?",
            (now, seq, memory_id),
        )
        changes: dict[str, Any] = {"status": {"old": "archived", "new": "active"}}
        if current.superseded_by:
            changes["superseded_by"] = {"old": current.superseded_by, "new": None}
        self._record(conn, memory_id, current.version + 1, "restore", now, client, changes)
        conn.execute("INSERT INTO graph_outbox(memory_id, op) VALUES (?, 'sync')", (memory_id,))

    def add_feedback(self, memory_id: str, entry: FeedbackEntry, *, client: str | None) -> Memory:
        """Append an entry to a task's log; recorded as a version."""
        check_ids([memory_id])
        with self.write() as conn:
            current = self._current(conn, memory_id)
            if current.type != "task":
                raise InvalidInput(f"memory {memory_id} is a {current.type}; feedback entries belong to tasks")
            if current.status == "deleted":
                raise NotFound(f"memory {memory_id} was deleted")
            seq = self._next_seq(conn)
            conn.execute(
                "INSERT INTO memory_feedback(memory_id, at, tried, result, client) VALUES (?, ?, ?, ?, ?)",
                (memory_id, entry.at, entry.tried, entry.result, client),
            )
            conn.execute(
                "UPDATE memories SET version = version + 1, updated_at = ?, seq = ? WHERE id = ?", (now_stored(), seq, memory_id)
            )
            self._record(
                conn, memory_id, current.version + 1, "feedback", now_stored(), client,
                {"feedback": {"old": None, "new": entry.model_dump(exclude={"client"})}},
            )
        return self.get_many([memory_id])[0]

    def record_denial(self, *, client: str | None, action: str, need: str) -> None:
        with self.write() as conn:
            conn.execute(
                "INSERT INTO access_denials(at, client, action, need) VALUES (?, ?, ?, ?)", (now_stored(), client, action, need)
            )

    def denials(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT at, client, action, need FROM access_denials ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [{"at": at, "client": client, "action": action, "need": need} for at, client, action, need in rows]

    def _live_id_by_hash(self, conn: sqlite3.Connection, hash_: str) -> str | None:
        row = conn.execute("SELECT id FROM memories WHERE content_hash = ? AND status != 'deleted'", (hash_,)).fetchone()
        return row[0] if row else None

    def _current(self, conn: sqlite3.Connection, memory_id: str) -> Memory:
        row = conn.execute(f"SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ?", (memory_id,)).fetchone()
        if row is None:
            raise NotFound(f"no memory {memory_id} in cube '{self.cube}'")
        return row_to_memory(self.cube, row)

    def _write_entities(self, conn: sqlite3.Connection, row_id: int, names: Sequence[str]) -> None:
        rows = {}
        for name in names:
            key = normalize(name)
            if key:
                rows.setdefault(key, name)
        conn.executemany("INSERT OR IGNORE INTO memory_entities(memory_rowid, name, norm) VALUES (?, ?, ?)", [(row_id, n, k) for k, n in rows.items()])

    def _record(self, conn: sqlite3.Connection, memory_id: str, version: int, op: str, at: str, client: str | None, changes: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO memory_versions(memory_id, version, op, at, client, changes) VALUES (?, ?, ?, ?, ?, ?)",
            (memory_id, version, op, at, client, _dumps(changes)),
        )
