"""One cube's settings in its SQLite file (``cube_meta``): read one, set or remove one in the caller's transaction.

The store's twin is ``memory.store.postgres.settings``.
"""

from __future__ import annotations

import sqlite3


def meta(conn: sqlite3.Connection, key: str) -> str | None:
    """One setting of the cube (None: not set)."""
    row = conn.execute("SELECT value FROM cube_meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: str | None) -> None:
    """Set one setting of the cube, or remove it (``value`` None)."""
    if value is None:
        conn.execute("DELETE FROM cube_meta WHERE key = ?", (key,))
    else:
        conn.execute(
            "INSERT INTO cube_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
        )
