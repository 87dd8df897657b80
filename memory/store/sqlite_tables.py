"""The tables of a cube's ``memory.db`` as one write transaction changes them (``contract.WriteTables``).

Bound to a connection inside ``CubeStore.write()``'s ``BEGIN IMMEDIATE``; ``MemoryWriter`` makes
the decisions. Full-text rows follow ``memories`` through the schema's triggers, and so do a
purged memory's entities, relations and feedback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from memory.models import FeedbackEntry, Memory
from memory.store import bulk_import, settings, threads
from memory.store.change_log import ChangeLog
from memory.store.contract import LiveDuplicate, RelationRow
from memory.store.rows import MEMORY_COLUMNS, dumps, insert_sql, row_to_memory, to_column

_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


class SqliteWriteTables:
    def __init__(self, cube: str, conn: sqlite3.Connection, changes: ChangeLog) -> None:
        self.cube = cube
        self._conn = conn
        self._changes = changes

    def next_seq(self) -> int:
        return int(
            self._conn.execute(
                "UPDATE cube_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'change_seq' RETURNING value"
            ).fetchone()[0]
        )

    def find(self, memory_id: str) -> Memory | None:
        row = self._conn.execute(f"SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ?", (memory_id,)).fetchone()
        return row_to_memory(self.cube, row) if row is not None else None

    def row_ids_of(self, memory_ids: Sequence[str]) -> list[int]:
        """The row ids of these memories, in the order given (unknown ids have none)."""
        found: dict[str, int] = {}
        for start in range(0, len(memory_ids), _CHUNK):
            chunk = list(memory_ids[start : start + _CHUNK])
            placeholders = ",".join("?" * len(chunk))
            found.update(self._conn.execute(f"SELECT id, row_id FROM memories WHERE id IN ({placeholders})", chunk).fetchall())
        return [found[i] for i in dict.fromkeys(memory_ids) if i in found]

    def live_id_by_hash(self, content_hash: str) -> str | None:
        row = self._conn.execute(
            "SELECT id FROM memories WHERE content_hash = ? AND status != 'deleted'", (content_hash,)
        ).fetchone()
        return row[0] if row else None

    def same_subject(self, type_: str, subject: str, role: str | None) -> list[str]:
        rows = self._conn.execute(
            "SELECT id FROM memories WHERE status = 'active' AND type = ? AND subject = ? AND role IS ? ORDER BY row_id",
            (type_, subject, role),
        ).fetchall()
        return [r[0] for r in rows]

    def known(self, ids: Sequence[str], hashes: Sequence[str]) -> tuple[set[str], set[str]]:
        return bulk_import.known(self._conn, ids, hashes)

    def set_setting(self, key: str, value: str | None) -> None:
        settings.set_meta(self._conn, key, value)

    def insert_memory(self, values: dict[str, Any]) -> int:
        return int(self._conn.execute(insert_sql(values), [to_column(k, v) for k, v in values.items()]).fetchone()[0])

    def set_columns(self, memory_id: str, values: dict[str, Any]) -> None:
        sets = ", ".join(f"{name} = ?" for name in values)  # names are the writer's own, never a client's
        try:
            self._conn.execute(
                f"UPDATE memories SET {sets} WHERE id = ?", [*(to_column(k, v) for k, v in values.items()), memory_id]
            )
        except sqlite3.IntegrityError as exc:
            raise LiveDuplicate(memory_id) from exc

    def set_embedding_model(self, row_id: int, model_id: str, seq: int) -> None:
        self._conn.execute("UPDATE memories SET embedding_model = ?, seq = ? WHERE row_id = ?", (model_id, seq, row_id))

    def delete_memory(self, memory_id: str) -> None:
        self._conn.execute("DELETE FROM memories WHERE id = ?", (memory_id,))

    def put_vector(self, row_id: int, vector: np.ndarray, *, replace: bool = True) -> None:
        """Store a memory's vector; ``replace=False``: it has none yet (a new row), so nothing to delete first."""
        if replace:
            self._conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (row_id,))
        self._conn.execute(
            "INSERT INTO memory_vec(rowid, embedding) VALUES (?, ?)", (row_id, vector.astype(np.float32).tobytes())
        )

    def drop_vector(self, row_id: int) -> None:
        self._conn.execute("DELETE FROM memory_vec WHERE rowid = ?", (row_id,))

    def insert_entities(self, row_id: int, names: Sequence[tuple[str, str]]) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO memory_entities(memory_rowid, name, norm) VALUES (?, ?, ?)",
            [(row_id, name, norm) for name, norm in names],
        )

    def drop_entities(self, row_id: int) -> None:
        self._conn.execute("DELETE FROM memory_entities WHERE memory_rowid = ?", (row_id,))
        self.entities_removed()

    def insert_relations(self, row_id: int, rows: Sequence[RelationRow]) -> None:
        bulk_import.insert_relations(self._conn, [(row_id, r) for r in rows])

    def drop_relations(self, row_id: int) -> None:
        self._conn.execute("DELETE FROM memory_relations WHERE memory_rowid = ?", (row_id,))

    def insert_feedback(self, memory_id: str, entry: FeedbackEntry, client: str | None) -> None:
        self._conn.execute(
            "INSERT INTO memory_feedback(memory_id, at, tried, result, client) VALUES (?, ?, ?, ?, ?)",
            (memory_id, entry.at, entry.tried, entry.result, client),
        )

    def record(self, memory_id: str, version: int, op: str, at: str, client: str | None, changes: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO memory_versions(memory_id, version, op, at, client, changes) VALUES (?, ?, ?, ?, ?, ?)",
            (memory_id, version, op, at, client, dumps(changes)),
        )

    def erase_history(self, memory_id: str) -> None:
        self._conn.execute("UPDATE memory_versions SET changes = '{}' WHERE memory_id = ?", (memory_id,))

    def queue(self, memory_ids: Sequence[str]) -> None:
        self._changes.queue(self._conn, memory_ids)

    def thread_keys(self, row_ids: Sequence[int]) -> set[str]:
        return threads.keys_of(self._conn, row_ids)

    def refresh_windows(self, row_ids: Sequence[int]) -> None:
        threads.refresh(self._conn, row_ids)

    def refresh_threads(self, keys: set[str]) -> None:
        threads.refresh_threads(self._conn, keys)

    def entities_removed(self) -> None:
        """Note that entity rows left the cube: readers that follow only what was added (``entity_key_delta``) start over."""
        self._conn.execute(
            "INSERT INTO cube_meta(key, value) VALUES ('entity_epoch', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def vectors_removed(self) -> None:
        """Vectors left for good: the vector mirror (``vector_mirror``) reloads instead of reading on from its place."""
        self._conn.execute("UPDATE cube_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'vector_epoch'")
