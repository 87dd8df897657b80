"""A cube's stored rows, table by table, in key order and in batches: what moving a cube to another engine reads.

Every table that holds something a person wrote or did is read (memories with their vectors,
context windows, history, entities, relations, task feedback, refused calls, the cube's
settings); the indexes derived from them (full text, status counts, the graph outbox) are not,
since the engine they move to derives its own. Rows come as dicts named by column, so the
writer on the other side never depends on a column's position.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np

from memory.store.rows import FIELDS

# ``row_id``, every stored field of a memory (``memory.store.rows``: derived from the model) and
# ``seq``, the cube's change number at the memory's last write.
MEMORY_COLUMNS: tuple[str, ...] = ("row_id", *FIELDS, "seq")


@dataclass
class MemoryBatch:
    """A batch of memories with what hangs on each of them (context windows, which hang on a
    whole thread, come through ``thread_context``)."""

    memories: list[dict[str, Any]]
    vectors: dict[int, np.ndarray]  # row id -> embedding (memories never embedded have none)
    entities: list[tuple[int, str, str]]  # (row id, name, norm)
    relations: list[dict[str, Any]]


def changed_memories(conn: sqlite3.Connection, after: tuple[int, int], limit: int) -> MemoryBatch:
    """The next ``limit`` memories (every status) changed after ``after`` = (seq, row id), oldest change first.

    Keyed by the change number a memory takes at each write, not by row id: a copy run again
    after the source went on being written reads the memories added *and* those changed since.
    """
    seq, row_id = after
    rows = conn.execute(
        f"SELECT {', '.join(MEMORY_COLUMNS)} FROM memories WHERE seq > ? OR (seq = ? AND row_id > ?) "
        "ORDER BY seq, row_id LIMIT ?",
        (seq, seq, row_id, limit),
    ).fetchall()
    memories = [dict(zip(MEMORY_COLUMNS, row, strict=True)) for row in rows]
    if not memories:
        return MemoryBatch([], {}, [], [])
    ids = [m["row_id"] for m in memories]
    marks = ",".join("?" * len(ids))
    vectors: dict[int, np.ndarray] = {}
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'memory_vec'").fetchone():
        for found, blob in conn.execute(f"SELECT rowid, embedding FROM memory_vec WHERE rowid IN ({marks})", ids):
            vectors[int(found)] = np.frombuffer(blob, dtype=np.float32).copy()
    entities = conn.execute(
        f"SELECT memory_rowid, name, norm FROM memory_entities WHERE memory_rowid IN ({marks}) ORDER BY memory_rowid, norm",
        ids,
    ).fetchall()
    relation_columns = ("memory_rowid", "source", "source_norm", "type", "target", "target_norm", "ended")
    relations = [
        dict(zip(relation_columns, row, strict=True))
        for row in conn.execute(
            f"SELECT {', '.join(relation_columns)} FROM memory_relations WHERE memory_rowid IN ({marks}) ORDER BY memory_rowid",
            ids,
        )
    ]
    return MemoryBatch(memories, vectors, entities, relations)


def thread_context(conn: sqlite3.Connection, threads: list[str]) -> list[tuple[str, str | None]]:
    """(memory id, its context window or None) of every memory in these threads.

    A window holds its neighbours' texts, so a write to one memory changes the windows of the
    others in its thread without writing their rows: a copy refreshes a touched thread whole.
    """
    if not threads:
        return []
    marks = ",".join("?" * len(threads))
    return conn.execute(
        f"SELECT m.id, x.text FROM memories m LEFT JOIN memory_context_fts x ON x.rowid = m.row_id WHERE m.thread IN ({marks})",
        threads,
    ).fetchall()


# Append-only logs, each read after its last copied ``seq``.
LOGS: dict[str, tuple[str, ...]] = {
    "memory_versions": ("seq", "memory_id", "version", "op", "at", "client", "changes"),
    "memory_feedback": ("seq", "memory_id", "at", "tried", "result", "client"),
    "access_denials": ("seq", "at", "client", "action", "need"),
}


def log_batch(conn: sqlite3.Connection, table: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
    """The next ``limit`` rows of one of ``LOGS`` after ``after_seq``, oldest first."""
    columns = LOGS[table]  # a KeyError for any other name: table names are never a caller's text
    rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
    return [dict(zip(columns, row, strict=True)) for row in rows]


def settings(conn: sqlite3.Connection) -> dict[str, str | None]:
    """The cube's ``cube_meta`` (its settings and counters)."""
    return {str(key): value for key, value in conn.execute("SELECT key, value FROM cube_meta ORDER BY key")}


def totals(conn: sqlite3.Connection) -> dict[str, int]:
    """How many rows each copied table holds: the progress bar's total, and the check after a copy."""
    found = {"memories": int(conn.execute("SELECT count(*) FROM memories").fetchone()[0])}
    for table in LOGS:
        found[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    return found
