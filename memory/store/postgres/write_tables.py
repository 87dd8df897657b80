"""A cube's tables in the PostgreSQL store as one write transaction changes them (``contract.WriteTables``).

Bound to a connection inside ``PostgresCubeStore``'s write transaction, which holds the
cube's write lock (``change_log.lock_cube``): the writer's reads (a live duplicate, the
memories a new one supersedes) and its writes then see no other server's write in between.
Every row carries its cube; the full-text columns are generated, and a deleted memory's
entities, relations, window and feedback go with it through foreign keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import errors, sql

from memory.errors import InvalidInput
from memory.models import FeedbackEntry, Memory
from memory.store.contract import LiveDuplicate, RelationRow
from memory.store.postgres import threads
from memory.store.postgres.change_log import PostgresChangeLog
from memory.store.postgres.schema import EMBEDDING_DIM
from memory.store.postgres.settings import set_meta
from memory.store.postgres.vectors import vector_text
from memory.store.rows import FIELDS, JSON_FIELDS, dumps, row_to_memory, to_column

# ``rows.MEMORY_COLUMNS`` as the store reads them: JSON columns as text, so one row reader serves both engines.
MEMORY_SELECT = ", ".join(f"{c}::text AS {c}" if c in JSON_FIELDS else c for c in ("row_id", *FIELDS))
_WRITABLE = frozenset((*FIELDS, "seq"))


class PostgresWriteTables:
    def __init__(self, cube: str, cube_id: int, conn: psycopg.Connection[Any], changes: PostgresChangeLog) -> None:
        self.cube = cube
        self.cube_id = cube_id
        self._conn = conn
        self._changes = changes

    def next_seq(self) -> int:
        # The first write to a cube moved here numbers on from its newest memory's change number.
        row = self._conn.execute(
            "INSERT INTO cube_meta (cube, key, value) VALUES "
            "(%(cube)s, 'change_seq', (SELECT coalesce(max(seq), 0) + 1 FROM memories WHERE cube = %(cube)s)::text) "
            "ON CONFLICT (cube, key) DO UPDATE SET value = (cube_meta.value::bigint + 1)::text RETURNING value",
            {"cube": self.cube_id},
        ).fetchone()
        assert row is not None
        return int(row[0])

    def find(self, memory_id: str) -> Memory | None:
        row = self._conn.execute(
            f"SELECT {MEMORY_SELECT} FROM memories WHERE cube = %s AND id = %s", (self.cube_id, memory_id)
        ).fetchone()
        return row_to_memory(self.cube, row) if row is not None else None

    def row_ids_of(self, memory_ids: Sequence[str]) -> list[int]:
        """The row ids of these memories, in the order given (unknown ids have none)."""
        found = dict(
            self._conn.execute(
                "SELECT id, row_id FROM memories WHERE cube = %s AND id = ANY(%s)", (self.cube_id, list(memory_ids))
            ).fetchall()
        )
        return [int(found[i]) for i in dict.fromkeys(memory_ids) if i in found]

    def live_id_by_hash(self, content_hash: str) -> str | None:
        row = self._conn.execute(
            "SELECT id FROM memories WHERE cube = %s AND content_hash = %s AND status <> 'deleted'", (self.cube_id, content_hash)
        ).fetchone()
        return str(row[0]) if row else None

    def same_subject(self, type_: str, subject: str, role: str | None) -> list[str]:
        rows = self._conn.execute(
            "SELECT id FROM memories WHERE cube = %s AND status = 'active' AND type = %s AND subject = %s "
            "AND role IS NOT DISTINCT FROM %s ORDER BY row_id",
            (self.cube_id, type_, subject, role),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def known(self, ids: Sequence[str], hashes: Sequence[str]) -> tuple[set[str], set[str]]:
        taken = self._conn.execute(
            "SELECT id FROM memories WHERE cube = %s AND id = ANY(%s)", (self.cube_id, list(ids))
        ).fetchall()
        live = self._conn.execute(
            "SELECT content_hash FROM memories WHERE cube = %s AND content_hash = ANY(%s) AND status != 'deleted'",
            (self.cube_id, list(hashes)),
        ).fetchall()
        return {r[0] for r in taken}, {r[0] for r in live}

    def set_setting(self, key: str, value: str | None) -> None:
        set_meta(self._conn, self.cube_id, key, value)

    def insert_memory(self, values: dict[str, Any]) -> int:
        names = _columns(values)
        statement = sql.SQL("INSERT INTO memories (cube, {}) VALUES (%s, {}) RETURNING row_id").format(
            sql.SQL(", ").join(sql.Identifier(n) for n in names),
            sql.SQL(", ").join(_placeholder(n) for n in names),
        )
        try:
            with self._conn.transaction():  # a savepoint: the write's transaction survives the refusal
                row = self._conn.execute(statement, [self.cube_id, *(to_column(n, values[n]) for n in names)]).fetchone()
        except errors.UniqueViolation as exc:
            raise LiveDuplicate(str(values.get("id"))) from exc
        assert row is not None
        return int(row[0])

    def set_columns(self, memory_id: str, values: dict[str, Any]) -> None:
        names = _columns(values)
        statement = sql.SQL("UPDATE memories SET {} WHERE cube = %s AND id = %s").format(
            sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(n), _placeholder(n)) for n in names)
        )
        try:
            with self._conn.transaction():
                self._conn.execute(statement, [*(to_column(n, values[n]) for n in names), self.cube_id, memory_id])
        except errors.UniqueViolation as exc:
            raise LiveDuplicate(memory_id) from exc

    def set_embedding_model(self, row_id: int, model_id: str, seq: int) -> None:
        self._conn.execute(
            "UPDATE memories SET embedding_model = %s, seq = %s WHERE cube = %s AND row_id = %s",
            (model_id, seq, self.cube_id, row_id),
        )

    def delete_memory(self, memory_id: str) -> None:
        self._conn.execute("DELETE FROM memories WHERE cube = %s AND id = %s", (self.cube_id, memory_id))

    def put_vector(self, row_id: int, vector: np.ndarray, *, replace: bool = True) -> None:
        if vector.shape != (EMBEDDING_DIM,):
            raise InvalidInput(
                f"the PostgreSQL store holds {EMBEDDING_DIM}-dimensional vectors and this one has {vector.shape[0]}: "
                "use the default embedding model with this store"
            )
        self._conn.execute(
            "UPDATE memories SET embedding = %s::vector WHERE cube = %s AND row_id = %s",
            (vector_text(vector), self.cube_id, row_id),
        )

    def drop_vector(self, row_id: int) -> None:
        self._conn.execute("UPDATE memories SET embedding = NULL WHERE cube = %s AND row_id = %s", (self.cube_id, row_id))

    def insert_entities(self, row_id: int, names: Sequence[tuple[str, str]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO memory_entities (memory_row_id, cube, name, norm) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(row_id, self.cube_id, name, norm) for name, norm in names],
            )

    def drop_entities(self, row_id: int) -> None:
        self._conn.execute("DELETE FROM memory_entities WHERE cube = %s AND memory_row_id = %s", (self.cube_id, row_id))
        self.entities_removed()

    def insert_relations(self, row_id: int, rows: Sequence[RelationRow]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO memory_relations (memory_row_id, cube, source, source_norm, type, target, target_norm, ended) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(row_id, self.cube_id, *r) for r in rows],
            )

    def drop_relations(self, row_id: int) -> None:
        self._conn.execute("DELETE FROM memory_relations WHERE cube = %s AND memory_row_id = %s", (self.cube_id, row_id))

    def insert_feedback(self, memory_id: str, entry: FeedbackEntry, client: str | None) -> None:
        self._conn.execute(
            "INSERT INTO memory_feedback (cube, memory_id, at, tried, result, client) VALUES (%s, %s, %s, %s, %s, %s)",
            (self.cube_id, memory_id, entry.at, entry.tried, entry.result, client),
        )

    def record(self, memory_id: str, version: int, op: str, at: str, client: str | None, changes: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO memory_versions (cube, memory_id, version, op, at, client, changes) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
            (self.cube_id, memory_id, version, op, at, client, dumps(changes)),
        )

    def erase_history(self, memory_id: str) -> None:
        self._conn.execute(
            "UPDATE memory_versions SET changes = '{}'::jsonb WHERE cube = %s AND memory_id = %s", (self.cube_id, memory_id)
        )

    def queue(self, memory_ids: Sequence[str]) -> None:
        self._changes.queue(self._conn, memory_ids)

    def thread_keys(self, row_ids: Sequence[int]) -> set[str]:
        return threads.keys_of(self._conn, self.cube_id, row_ids)

    def refresh_windows(self, row_ids: Sequence[int]) -> None:
        threads.refresh(self._conn, self.cube_id, row_ids)

    def refresh_threads(self, keys: set[str]) -> None:
        threads.refresh_threads(self._conn, self.cube_id, keys)

    def entities_removed(self) -> None:
        """Note that entity rows left the cube: readers that follow only what was added start over."""
        self._conn.execute(
            "INSERT INTO cube_meta (cube, key, value) VALUES (%s, 'entity_epoch', '1') "
            "ON CONFLICT (cube, key) DO UPDATE SET value = (cube_meta.value::bigint + 1)::text",
            (self.cube_id,),
        )

    def vectors_removed(self) -> None:
        """Nothing to note: the store's vector reads go to the index, and its caches key on the change log."""


def _columns(values: dict[str, Any]) -> list[str]:
    unknown = [n for n in values if n not in _WRITABLE]
    if unknown:
        raise ValueError(f"not columns of memories: {unknown}")
    return list(values)


def _placeholder(name: str) -> sql.Composable:
    return sql.SQL("%s::jsonb") if name in JSON_FIELDS else sql.SQL("%s")
