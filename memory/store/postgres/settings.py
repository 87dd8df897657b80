"""One cube's settings in the store (``cube_meta``): read one, set one in the caller's transaction."""

from __future__ import annotations

from typing import Any

import psycopg


def meta(conn: psycopg.Connection[Any], cube_id: int, key: str) -> str | None:
    """One setting of the cube ``cube_id`` (None: not set)."""
    row = conn.execute("SELECT value FROM cube_meta WHERE cube = %s AND key = %s", (cube_id, key)).fetchone()
    return str(row[0]) if row and row[0] is not None else None


def set_meta(conn: psycopg.Connection[Any], cube_id: int, key: str, value: str | None) -> None:
    """Set one setting of the cube ``cube_id`` in the caller's transaction, or remove it (``value`` None:
    read back as not set either way). The data folder's twin is ``memory.store.settings``."""
    if value is None:
        conn.execute("DELETE FROM cube_meta WHERE cube = %s AND key = %s", (cube_id, key))
        return
    conn.execute(
        "INSERT INTO cube_meta (cube, key, value) VALUES (%s, %s, %s) ON CONFLICT (cube, key) DO UPDATE SET value = excluded.value",
        (cube_id, key, value),
    )
