"""Moving a cube from a data folder into the PostgreSQL store: lossless, resumable, with progress.

What a person wrote and did moves as it is: memory ids, versions, texts and every field,
vectors, context windows, entities, relations, history, task feedback, refused calls and the
cube's settings. What each engine derives for itself (its full-text index, status counts) is
derived again on arrival; row ids are the database's own (one sequence serves every cube of
the store), so rows that hang on a memory are written against its new row id.

A copy runs in batches, each in its own transaction, and records in the store how far it got
(``cube_meta`` keys under ``COPY_MARK``). Run again, it reads on from there: the memories
changed since (by their change number, so an update or an archive made in between is
carried too), the history written since, and the purges in it. Every memory written is
queued on the cube's change log, so each server's local graph picks it up. A context window
holds its thread neighbours' texts, so a write to one memory changes others' windows: each
batch notes the threads its memories leave and join, and their windows are copied once, at
the end (a run cut off before then copies them on the next).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from memory.errors import InvalidInput
from memory.store import export
from memory.store.cube_store import CubeStore
from memory.store.postgres.change_log import PostgresChangeLog
from memory.store.postgres.cube_store import ensure_cube
from memory.store.postgres.schema import EMBEDDING_DIM
from memory.store.postgres.settings import meta, set_meta
from memory.store.postgres.vectors import vector_text
from memory.store.rows import JSON_FIELDS

# The data folder's own bookkeeping in cube_meta, about its file and not the cube: its vector
# mirror's epoch, its keyword indexes' last merge, a graph to rebuild after a restored backup,
# and memories whose relations were not yet read from their texts (by SQLite row id:
# ``memcube migrate`` reads them before copying).
FOLDER_BOOKKEEPING = frozenset(
    {"vector_epoch", "graph_rebuild", "relations_unread_below", "relations_unread_from", "fulltext_merged_at_row"}
)
COPY_MARK = "copy."  # cube_meta keys of the copy's own progress (never a key of the source cube)
BATCH = 500
_COPIED_COLUMNS = tuple(c for c in export.MEMORY_COLUMNS if c != "row_id")

# (stage, done, total): the shape of ``memory.io.progress.Progress``, which the CLI's bar draws.
Progress = Callable[[str, int, int | None], None]
COPYING = "copying"  # the progress stage: rows copied (memories, then history), of all the cube holds


@dataclass
class CopyReport:
    cube: str
    memories: int = 0  # memory rows written by this run (new or changed)
    logs: dict[str, int] = field(default_factory=dict)  # history rows written by this run, per table
    purged: int = 0
    by_status: dict[str, int] = field(default_factory=dict)  # the cube in the store afterwards


def copy_cube(
    store: CubeStore, conn: psycopg.Connection[Any], name: str, *, batch: int = BATCH, progress: Progress | None = None
) -> CopyReport:
    """Copy (or bring up to date) the cube ``store`` into the store behind ``conn`` as ``name``.

    ``conn`` is an autocommit connection to a migrated store; each batch commits on its own.
    """
    cube_id = ensure_cube(conn, name)
    report = CopyReport(name)
    total = sum(store.export_totals().values())
    done = 0
    log = PostgresChangeLog(conn, cube_id, follower="memcube-copy")

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        if progress is not None:
            progress(COPYING, min(done, total), total)

    seq, row_id = _mark(conn, cube_id, "memories", (0, 0))
    after = (seq, row_id)
    while True:
        rows = store.export_changed_memories(after, batch)
        if not rows.memories:
            break
        with conn.transaction():
            ids = [m["id"] for m in rows.memories]
            _touch_threads(conn, cube_id, ids)  # the threads they were in (a memory may leave one)...
            _write_memories(conn, cube_id, rows)
            _touch_threads(conn, cube_id, ids)  # ...and those they are in now
            log.queue(conn, ids)
            after = (rows.memories[-1]["seq"], rows.memories[-1]["row_id"])
            _set_mark(conn, cube_id, "memories", after)
        report.memories += len(rows.memories)
        advance(len(rows.memories))

    for table in export.LOGS:
        last = _mark(conn, cube_id, table, (0,))[0]
        report.logs[table] = 0
        while True:
            entries = store.export_log(table, last, batch)
            if not entries:
                break
            with conn.transaction():
                if table == "memory_versions":
                    report.purged += _purge(conn, cube_id, log, [e["memory_id"] for e in entries if e["op"] == "purge"])
                _write_log(conn, cube_id, table, entries)
                last = int(entries[-1]["seq"])
                _set_mark(conn, cube_id, table, (last,))
            report.logs[table] += len(entries)
            advance(len(entries))

    _refresh_touched_threads(store, conn, cube_id)
    with conn.transaction():
        for key, value in store.export_settings().items():
            if key not in FOLDER_BOOKKEEPING:
                set_meta(conn, cube_id, key, value)
    # A bulk load leaves the planner without statistics until autovacuum comes by: joins on the
    # entity tables then took 8 ms instead of 0.6 ms on a LoCoMo cube.
    conn.execute("ANALYZE memories, memory_entities, memory_relations, memory_context")
    report.by_status = {
        str(status): int(n)
        for status, n in conn.execute("SELECT status, n FROM memory_status_counts WHERE cube = %s AND n > 0", (cube_id,))
    }
    return report


def _mark(conn: psycopg.Connection[Any], cube_id: int, part: str, start: tuple[int, ...]) -> tuple[int, ...]:
    """How far an earlier copy got with ``part`` (``start`` when none did)."""
    found = meta(conn, cube_id, COPY_MARK + part)
    return tuple(int(x) for x in found.split(":")) if found else start


def _set_mark(conn: psycopg.Connection[Any], cube_id: int, part: str, at: tuple[int, ...]) -> None:
    set_meta(conn, cube_id, COPY_MARK + part, ":".join(str(x) for x in at))


def _stored(column: str, value: Any) -> Any:
    return _json_text(value) if column in JSON_FIELDS else value


def _json_text(value: Any) -> str | None:
    """A JSON column's value as the text PostgreSQL casts to jsonb (SQLite keeps JSON as text)."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _write_memories(conn: psycopg.Connection[Any], cube_id: int, rows: export.MemoryBatch) -> None:
    """Insert or bring up to date one batch of memories and what hangs on them, under their store row ids."""
    for vector in rows.vectors.values():
        if vector.shape != (EMBEDDING_DIM,):
            raise InvalidInput(
                f"this cube's vectors have {vector.shape[0]} dimensions and the PostgreSQL store holds {EMBEDDING_DIM}: "
                "re-embed it with the default model first (memcube doctor --reembed)"
            )
    columns = ", ".join(_COPIED_COLUMNS)
    values = ", ".join(f"%({c})s::jsonb" if c in JSON_FIELDS else f"%({c})s" for c in _COPIED_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*_COPIED_COLUMNS, "embedding") if c != "id")
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO memories (cube, {columns}, embedding) VALUES (%(cube)s, {values}, %(embedding)s::vector) "
            f"ON CONFLICT (cube, id) DO UPDATE SET {updates}",
            [
                {
                    **{c: _stored(c, m[c]) for c in _COPIED_COLUMNS},
                    "cube": cube_id,
                    "embedding": _vector_or_none(rows.vectors.get(m["row_id"])),
                }
                for m in rows.memories
            ],
        )
    new_row = dict(
        conn.execute(
            "SELECT id, row_id FROM memories WHERE cube = %s AND id = ANY(%s)", (cube_id, [m["id"] for m in rows.memories])
        ).fetchall()
    )
    row_of = {m["row_id"]: int(new_row[m["id"]]) for m in rows.memories}
    targets = list(row_of.values())
    # Their windows too: those of the threads they are in come back at the end of the copy
    # (``_refresh_touched_threads``); one that left every thread has none.
    for table, column in (
        ("memory_context", "row_id"),
        ("memory_entities", "memory_row_id"),
        ("memory_relations", "memory_row_id"),
    ):
        conn.execute(f"DELETE FROM {table} WHERE cube = %s AND {column} = ANY(%s)", (cube_id, targets))  # a fixed name
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO memory_entities (memory_row_id, cube, name, norm) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(row_of[row_id], cube_id, entity, norm) for row_id, entity, norm in rows.entities if row_id in row_of],
        )
        cursor.executemany(
            "INSERT INTO memory_relations (memory_row_id, cube, source, source_norm, type, target, target_norm, ended) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    row_of[r["memory_rowid"]],
                    cube_id,
                    r["source"],
                    r["source_norm"],
                    r["type"],
                    r["target"],
                    r["target_norm"],
                    bool(r["ended"]),
                )
                for r in rows.relations
                if r["memory_rowid"] in row_of
            ],
        )


def _touch_threads(conn: psycopg.Connection[Any], cube_id: int, memory_ids: Sequence[str]) -> None:
    """Note, in the batch's own transaction, the threads these memories are in: their windows are refreshed at the end."""
    key = COPY_MARK + "threads"
    conn.execute(
        "INSERT INTO cube_meta (cube, key, value) SELECT %(cube)s, %(key)s, coalesce(jsonb_agg(DISTINCT t), '[]')::text FROM ("
        "  SELECT thread AS t FROM memories WHERE cube = %(cube)s AND id = ANY(%(ids)s) AND thread IS NOT NULL"
        "  UNION SELECT jsonb_array_elements_text(value::jsonb) FROM cube_meta WHERE cube = %(cube)s AND key = %(key)s"
        ") touched ON CONFLICT (cube, key) DO UPDATE SET value = excluded.value",
        {"cube": cube_id, "key": key, "ids": list(memory_ids)},
    )


def _refresh_touched_threads(store: CubeStore, conn: psycopg.Connection[Any], cube_id: int) -> None:
    """Copy the context windows of every memory in the threads this copy (or one cut off before it) touched."""
    key = COPY_MARK + "threads"
    touched = meta(conn, cube_id, key)
    threads = sorted(json.loads(touched)) if touched else []
    windows = store.export_thread_context(threads)
    with conn.transaction():
        ids = [memory_id for memory_id, _ in windows]
        conn.execute(
            "DELETE FROM memory_context x USING memories m WHERE m.row_id = x.row_id AND m.cube = %s AND m.id = ANY(%s)",
            (cube_id, ids),
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO memory_context (row_id, cube, text) SELECT row_id, cube, %s FROM memories WHERE cube = %s AND id = %s",
                [(text, cube_id, memory_id) for memory_id, text in windows if text is not None],
            )
        conn.execute("DELETE FROM cube_meta WHERE cube = %s AND key = %s", (cube_id, key))


def _vector_or_none(vector: np.ndarray | None) -> str | None:
    return None if vector is None else vector_text(vector)


def _write_log(conn: psycopg.Connection[Any], cube_id: int, table: str, entries: Sequence[dict[str, Any]]) -> None:
    columns = [c for c in export.LOGS[table] if c != "seq"]  # the store numbers its own rows, in this order
    values = ", ".join("%s::jsonb" if c == "changes" else "%s" for c in columns)
    rows = [(cube_id, *(_json_text(e[c]) if c == "changes" else e[c] for c in columns)) for e in entries]
    if table == "memory_feedback":  # feedback hangs on its memory: a memory purged since has none
        known = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM memories WHERE cube = %s AND id = ANY(%s)", (cube_id, [e["memory_id"] for e in entries])
            )
        }
        rows = [row for row, e in zip(rows, entries, strict=True) if e["memory_id"] in known]
    with conn.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} (cube, {', '.join(columns)}) VALUES (%s, {values})", rows)  # names from LOGS


def _purge(conn: psycopg.Connection[Any], cube_id: int, log: PostgresChangeLog, memory_ids: Sequence[str]) -> int:
    """Erase memories the source purged after an earlier run copied them."""
    if not memory_ids:
        return 0
    _touch_threads(conn, cube_id, memory_ids)  # before they go: their neighbours' windows lose them
    gone = conn.execute(
        "DELETE FROM memories WHERE cube = %s AND id = ANY(%s) RETURNING id", (cube_id, list(memory_ids))
    ).fetchall()
    log.queue(conn, [r[0] for r in gone])
    return len(gone)
