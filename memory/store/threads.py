"""Threads and context windows: what a memory says, read with the memories around it.

A chat turn often means little alone ("Yes, I play clarinet!" answers a question asked
one turn before). Memories that share a ``session_id`` form a **thread**, ordered by
``occurred_at`` then by insertion (``row_id``). A client that sends no session still
writes conversations: memories **without** a session that one client says happened on the
same day (``occurred_at``, UTC date) form an **inferred thread**. The key of a memory's
thread is the generated column ``memories.thread`` (``THREAD_KEY``): ``s:<session_id>``,
or ``d:<client>:<day>``, or NULL (no session and no ``occurred_at``: a note saved with no
time of its own belongs to no conversation we can see).

Each memory's **context window** is its own text with up to ``WINDOW`` live neighbours on
each side in its thread. The windows are indexed in ``memory_context_fts`` (FTS5, rowid =
the memory's row id), so a keyword search can match a turn through words that its
neighbours said. A memory of a type that stands alone (``STANDALONE_TYPES``: facts,
preferences) also keeps its own-text match: search takes the better of the two. A memory
with no thread is its own window: it is not indexed here a second time, search uses its
``memory_fts`` match (a cube of 10,000 notes would otherwise pay for two identical keyword
passes per search).

The windows are derived state (invariant 2): every write that can change a thread
(add, a new text or ``occurred_at``, a status change, a purge) calls ``refresh`` for the
memories it touched, inside the same transaction, and ``refresh`` rebuilds the windows
of every memory in those memories' threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence

WINDOW = 2  # neighbours on each side
LIVE = ("active", "archived")
# Types whose text is a statement that stands alone ("Ana plays the cello"), unlike a chat
# turn ("Yes, every Sunday!"). In a thread such a memory's context match is the better of
# its window's and its own text's: an inferred thread's day mixes subjects, and its
# neighbours must not dilute a statement that says it all (bench/RESULTS.md, issue 16).
STANDALONE_TYPES = ("fact", "preference")
# The thread a memory belongs to (the generated column ``memories.thread``, see schema v6).
THREAD_KEY = (
    "CASE WHEN session_id IS NOT NULL THEN 's:' || session_id "
    "WHEN occurred_at IS NOT NULL THEN 'd:' || coalesce(client, '') || ':' || substr(occurred_at, 1, 10) END"
)


def keys_of(conn: sqlite3.Connection, row_ids: Iterable[int]) -> set[str]:
    """The thread keys of these memories (read before a write that may move them to another thread)."""
    row_ids = list(dict.fromkeys(int(r) for r in row_ids))
    keys: set[str] = set()
    for start in range(0, len(row_ids), 500):
        chunk = row_ids[start : start + 500]
        placeholders = ",".join("?" * len(chunk))
        keys.update(k for (k,) in conn.execute(f"SELECT thread FROM memories WHERE row_id IN ({placeholders})", chunk) if k)
    return keys


def refresh(conn: sqlite3.Connection, row_ids: Iterable[int]) -> None:
    """Rebuild the context windows of these memories and of every memory in their threads."""
    row_ids = list(dict.fromkeys(int(r) for r in row_ids))
    keys: set[str] = set()
    for start in range(0, len(row_ids), 500):
        chunk = row_ids[start : start + 500]
        placeholders = ",".join("?" * len(chunk))
        found = dict(conn.execute(f"SELECT row_id, thread FROM memories WHERE row_id IN ({placeholders})", chunk).fetchall())
        for row_id in chunk:
            if row_id in found and found[row_id] is not None:
                keys.add(found[row_id])
                continue
            # Purged, or a memory in no thread (its window is its own text, in memory_fts).
            conn.execute("DELETE FROM memory_context_fts WHERE rowid = ?", (row_id,))
    refresh_threads(conn, keys)


def refresh_threads(conn: sqlite3.Connection, thread_keys: Iterable[str | None]) -> None:
    """Rebuild the context windows of every memory in these threads (keys as in ``memories.thread``)."""
    for key in sorted({k for k in thread_keys if k is not None}):
        _refresh_thread(conn, key)


def _refresh_thread(conn: sqlite3.Connection, key: str) -> None:
    rows = conn.execute(
        "SELECT row_id, text, status FROM memories WHERE thread = ? ORDER BY coalesce(occurred_at, ''), row_id",
        (key,),
    ).fetchall()
    wanted = windows(rows)
    all_ids = [r for r, _, _ in rows]
    current: dict[int, str] = {}
    for start in range(0, len(all_ids), 500):
        chunk = all_ids[start : start + 500]
        placeholders = ",".join("?" * len(chunk))
        current.update(
            conn.execute(f"SELECT rowid, text FROM memory_context_fts WHERE rowid IN ({placeholders})", chunk).fetchall()
        )
    # Write only the windows that changed: an add to a long thread touches a few rows, not all.
    for row_id in all_ids:
        if current.get(row_id) == wanted.get(row_id):
            continue
        if row_id in current:
            conn.execute("DELETE FROM memory_context_fts WHERE rowid = ?", (row_id,))
        if row_id in wanted:
            conn.execute("INSERT INTO memory_context_fts(rowid, text) VALUES (?, ?)", (row_id, wanted[row_id]))


def windows(thread: Sequence[tuple[int, str, str]]) -> dict[int, str]:
    """The context window of each live memory of one thread, from its ``(row_id, text, status)`` rows in thread order."""
    live = [(row_id, text) for row_id, text, status in thread if status in LIVE]
    return {row_id: "\n".join(t for _, t in live[max(0, i - WINDOW) : i + WINDOW + 1]) for i, (row_id, _) in enumerate(live)}


def thread_neighbours(
    conn: sqlite3.Connection, row_id: int, before: int, after: int, statuses: tuple[str, ...] = ("active",)
) -> list[tuple[int, int]]:
    """The live neighbours of a memory in its thread as ``(row_id, offset)``, offset < 0 before it."""
    row = conn.execute("SELECT thread, occurred_at FROM memories WHERE row_id = ?", (row_id,)).fetchone()
    if row is None or row[0] is None:
        return []
    key, occurred_at = row
    earlier = _walk(conn, key, (occurred_at or "", row_id), statuses, before, backwards=True)
    later = _walk(conn, key, (occurred_at or "", row_id), statuses, after, backwards=False)
    return with_offsets(earlier, later)


def with_offsets(earlier: Sequence[int], later: Sequence[int]) -> list[tuple[int, int]]:
    """Neighbours found walking back (``earlier``) and forth (``later``), each nearest first, as
    ``(row_id, offset)`` in thread order, offset < 0 before the memory."""
    return [(r, -(i + 1)) for i, r in enumerate(earlier)][::-1] + [(r, i + 1) for i, r in enumerate(later)]


def neighbours_by_id(
    ids: Sequence[str], row_ids: Mapping[str, int], neighbours: Callable[[int], list[tuple[int, int]]]
) -> list[tuple[str, int, int]]:
    """``thread_neighbours_of`` for either engine: each known memory's ``neighbours(row id)``, as
    ``(memory id, neighbour row id, offset)`` in the order of ``ids``."""
    wanted: list[tuple[str, int, int]] = []
    for memory_id in ids:
        row_id = row_ids.get(memory_id)
        if row_id is not None:
            wanted.extend((memory_id, neighbour, offset) for neighbour, offset in neighbours(row_id))
    return wanted


def _walk(
    conn: sqlite3.Connection, key: str, start: tuple[str, int], statuses: tuple[str, ...], count: int, *, backwards: bool
) -> list[int]:
    """Up to ``count`` row ids of the thread, nearest first, going back or forth from ``start`` (thread order)."""
    if count <= 0:
        return []
    when, row_id = start
    beyond, order = ("<", "DESC") if backwards else (">", "ASC")
    placeholders = ",".join("?" * len(statuses))
    rows = conn.execute(
        f"SELECT row_id FROM memories WHERE thread = ? AND status IN ({placeholders}) "
        f"AND (coalesce(occurred_at, '') {beyond} ? OR (coalesce(occurred_at, '') = ? AND row_id {beyond} ?)) "
        f"ORDER BY coalesce(occurred_at, '') {order}, row_id {order} LIMIT ?",
        [key, *statuses, when, when, row_id, count],
    ).fetchall()
    return [r for (r,) in rows]
