"""Context windows in PostgreSQL: ``memory.store.threads``'s rules, over the store's ``memory_context``.

The thread key is the generated column ``memories.thread``, as in SQLite; a window is a
memory's text with its live neighbours' (``threads.windows``, shared by both engines).
Refreshed in the write's own transaction, writing only the windows that changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from memory.store.threads import windows, with_offsets


def keys_of(conn: psycopg.Connection[Any], cube_id: int, row_ids: Sequence[int]) -> set[str]:
    """The thread keys of these memories (read before a write that may move them to another thread)."""
    rows = conn.execute(
        "SELECT DISTINCT thread FROM memories WHERE cube = %s AND row_id = ANY(%s) AND thread IS NOT NULL",
        (cube_id, list(row_ids)),
    ).fetchall()
    return {str(r[0]) for r in rows}


def refresh(conn: psycopg.Connection[Any], cube_id: int, row_ids: Sequence[int]) -> None:
    """Rebuild the context windows of these memories and of every memory in their threads."""
    found = dict(
        conn.execute(
            "SELECT row_id, thread FROM memories WHERE cube = %s AND row_id = ANY(%s)", (cube_id, list(row_ids))
        ).fetchall()
    )
    # Purged, or in no thread: such a memory's window is its own text, searched through ``memories.search``.
    alone = [r for r in row_ids if found.get(r) is None]
    if alone:
        conn.execute("DELETE FROM memory_context WHERE cube = %s AND row_id = ANY(%s)", (cube_id, alone))
    refresh_threads(conn, cube_id, {str(k) for k in found.values() if k is not None})


def refresh_threads(conn: psycopg.Connection[Any], cube_id: int, keys: Iterable[str]) -> None:
    """Rebuild the context windows of every memory in these threads."""
    for key in sorted(set(keys)):
        _refresh_thread(conn, cube_id, key)


def _refresh_thread(conn: psycopg.Connection[Any], cube_id: int, key: str) -> None:
    # COLLATE "C": the stored times sort as SQLite sorts them, byte by byte, whatever the database's locale.
    rows = [
        (int(r), str(t), str(s))
        for r, t, s in conn.execute(
            "SELECT row_id, text, status FROM memories WHERE cube = %s AND thread = %s "
            "ORDER BY coalesce(occurred_at, '') COLLATE \"C\", row_id",
            (cube_id, key),
        )
    ]
    wanted = windows(rows)
    all_ids = [r for r, _, _ in rows]
    current = dict(
        conn.execute("SELECT row_id, text FROM memory_context WHERE cube = %s AND row_id = ANY(%s)", (cube_id, all_ids))
    )
    # Write only the windows that changed: an add to a long thread touches a few rows, not all.
    changed = [r for r in all_ids if current.get(r) != wanted.get(r)]
    if not changed:
        return
    conn.execute("DELETE FROM memory_context WHERE cube = %s AND row_id = ANY(%s)", (cube_id, changed))
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO memory_context (row_id, cube, text) VALUES (%s, %s, %s)",
            [(r, cube_id, wanted[r]) for r in changed if r in wanted],
        )


def thread_neighbours(
    conn: psycopg.Connection[Any], cube_id: int, row_id: int, before: int, after: int, statuses: Sequence[str]
) -> list[tuple[int, int]]:
    """The live neighbours of a memory in its thread as ``(row_id, offset)``, offset < 0 before it
    (``memory.store.threads.thread_neighbours``)."""
    row = conn.execute("SELECT thread, occurred_at FROM memories WHERE cube = %s AND row_id = %s", (cube_id, row_id)).fetchone()
    if row is None or row[0] is None:
        return []
    start = (str(row[1] or ""), row_id)
    earlier = _walk(conn, cube_id, str(row[0]), start, statuses, before, backwards=True)
    later = _walk(conn, cube_id, str(row[0]), start, statuses, after, backwards=False)
    return with_offsets(earlier, later)


def _walk(
    conn: psycopg.Connection[Any],
    cube_id: int,
    key: str,
    start: tuple[str, int],
    statuses: Sequence[str],
    count: int,
    *,
    backwards: bool,
) -> list[int]:
    """Up to ``count`` row ids of the thread, nearest first, going back or forth from ``start`` (thread order).

    COLLATE "C" on the times, in the comparisons as in the order: byte by byte, as SQLite compares them.
    """
    if count <= 0:
        return []
    beyond, order = ("<", "DESC") if backwards else (">", "ASC")  # one of two fixed pairs: no value of the caller's
    when = "coalesce(occurred_at, '') COLLATE \"C\""
    rows = conn.execute(
        "SELECT row_id FROM memories WHERE cube = %(cube)s AND thread = %(key)s AND status = ANY(%(statuses)s) "
        f"AND ({when} {beyond} %(when)s OR ({when} = %(when)s AND row_id {beyond} %(row)s)) "
        f"ORDER BY {when} {order}, row_id {order} LIMIT %(count)s",
        {"cube": cube_id, "key": key, "statuses": list(statuses), "when": start[0], "row": start[1], "count": count},
    ).fetchall()
    return [int(r) for (r,) in rows]
