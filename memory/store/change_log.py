"""The change log of a cube in SQLite (``graph_outbox``): which memories changed, in order.

Every write that changes a memory queues its id here in the same transaction
(``queue``); what is derived from the memories follows the log: the local Kuzu graph
applies ``pending`` changes and marks them ``done``. The log is the one place those rows
are written; ``memory.store.contract.ChangeFeed`` is the contract it shares with the
PostgreSQL engine's log (``memory.store.postgres.change_log``), where several servers
follow one log.

In SQLite one graph folder follows one database, so an applied change is deleted: the
log is a queue, and its sequence numbers may start again once it is empty.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

from memory.store.contract import Change


class ChangeLog:
    """``graph_outbox`` of one cube's database, written inside the store's transactions."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        lock: threading.RLock,
        write: Callable[[], AbstractContextManager[sqlite3.Connection]],
    ) -> None:
        self._conn = conn
        self._lock = lock
        self._write = write

    def queue(self, conn: sqlite3.Connection, memory_ids: Iterable[str]) -> None:
        """Record that these memories changed, in the caller's write transaction."""
        conn.executemany("INSERT INTO graph_outbox(memory_id, op) VALUES (?, 'sync')", [(i,) for i in memory_ids])

    def queue_rows(self, conn: sqlite3.Connection, row_ids: Iterable[int]) -> None:
        """``queue`` for memories known by their row ids."""
        conn.executemany(
            "INSERT INTO graph_outbox(memory_id, op) SELECT id, 'sync' FROM memories WHERE row_id = ?", [(r,) for r in row_ids]
        )

    def pending(self, limit: int) -> list[Change]:
        """The oldest changes not yet applied, in order."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, memory_id FROM graph_outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [Change(seq, memory_id) for seq, memory_id in rows]

    def done(self, up_to_seq: int, *, rebuilt: bool = False) -> None:
        """The changes up to ``up_to_seq`` are applied; ``rebuilt``: the graph was derived anew, so
        the request for a rebuild is answered too."""
        with self._write() as conn:
            conn.execute("DELETE FROM graph_outbox WHERE seq <= ?", (up_to_seq,))
            if rebuilt:
                conn.execute("DELETE FROM cube_meta WHERE key = 'graph_rebuild'")

    def high(self) -> int:
        """The sequence number of the newest change (0: none)."""
        with self._lock:
            return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM graph_outbox").fetchone()[0])

    def count(self) -> int:
        """How many changes are not yet applied."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM graph_outbox").fetchone()[0])
