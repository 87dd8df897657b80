"""Checks and repairs of a cube's derived tables, for ``memcube doctor``.

Each check compares a derived table (FTS rows, context windows, vectors) with the memory
rows it derives from; each repair rebuilds that table from the rows, in one transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from memory.store import threads

LIVE = "m.status != 'deleted'"
DerivedTable = Literal["memory_fts", "memory_context_fts", "memory_vec"]
# Which memories should have a row in each derived table.
BELONGS: dict[str, str] = {
    "memory_fts": LIVE,
    "memory_context_fts": f"{LIVE} AND m.thread IS NOT NULL",
    "memory_vec": LIVE,
}


def integrity(conn: sqlite3.Connection) -> str:
    """SQLite's own ``integrity_check``: "ok", or its first finding."""
    return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def drift(conn: sqlite3.Connection, table: DerivedTable) -> tuple[int, int]:
    """(memories that should have a row in ``table`` and do not, rows of ``table`` for no such memory)."""
    belongs = BELONGS[table]
    missing = conn.execute(
        f"SELECT count(*) FROM memories m WHERE {belongs} AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.rowid = m.row_id)"
    ).fetchone()[0]
    extra = conn.execute(
        f"SELECT count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM memories m WHERE m.row_id = t.rowid AND {belongs})"
    ).fetchone()[0]
    return int(missing), int(extra)


def rebuild_fts(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM memory_fts")
    conn.execute(
        "INSERT INTO memory_fts(rowid, text, tags, entities) SELECT row_id, text, "
        "(SELECT group_concat(value, ' ') FROM json_each(tags)), (SELECT group_concat(value, ' ') FROM json_each(entities)) "
        "FROM memories WHERE status != 'deleted'"
    )


def rebuild_context_windows(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM memory_context_fts")
    keys = [r[0] for r in conn.execute("SELECT DISTINCT thread FROM memories WHERE thread IS NOT NULL")]
    threads.refresh_threads(conn, keys)


def status_count_drift(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Statuses whose kept count (``memory_status_counts``) is not the number of rows: status -> (kept, counted)."""
    kept = dict(conn.execute("SELECT status, n FROM memory_status_counts").fetchall())
    counted = dict(conn.execute("SELECT status, count(*) FROM memories GROUP BY status").fetchall())
    return {s: (kept.get(s, 0), counted.get(s, 0)) for s in kept.keys() | counted.keys() if kept.get(s, 0) != counted.get(s, 0)}


def recount_statuses(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM memory_status_counts")
    conn.execute("INSERT INTO memory_status_counts SELECT status, count(*) FROM memories GROUP BY status")


def drop_stray_vectors(conn: sqlite3.Connection) -> None:
    """Drop vectors of deleted or purged memories; mark live memories without one for re-embedding."""
    conn.execute("DELETE FROM memory_vec WHERE rowid NOT IN (SELECT row_id FROM memories WHERE status != 'deleted')")
    conn.execute(
        "UPDATE memories SET embedding_model = NULL WHERE status != 'deleted' AND row_id NOT IN (SELECT rowid FROM memory_vec)"
    )
