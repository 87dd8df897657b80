"""A cube's change log in PostgreSQL, followed by every server that shares the database.

The log (``change_log``) is written in each write's own transaction, as SQLite's
``graph_outbox`` is (``memory.store.change_log``), and serves the same contract
(``memory.store.contract.ChangeFeed``), with two differences that come from many servers
following one log:

- An applied change stays in the log; each follower (a server's local graph, its caches)
  keeps its own place in ``change_cursors``.
- Sequence numbers come from one identity column, handed out at insert and visible at
  commit, so a lower number could commit after a follower read past it. ``queue`` takes a
  per-cube advisory lock held to the end of the transaction: within a cube, numbers are then
  handed out and committed in the same order, and a follower never skips a change.

``ChangeListener`` wakes a server when another one commits a change (``LISTEN`` on
``CHANGES_CHANNEL``: the log's trigger sends one notification per cube and statement, at
commit), so no server polls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from memory.store.contract import Change
from memory.store.postgres.schema import ACCESS_CHANNEL, CHANGES_CHANNEL, STORED_NOW

# pg_advisory_xact_lock(class, cube): the class keeps these locks apart from any other tool's
# ("mc" in ASCII); two cubes whose ids collide modulo 2^31 only wait for each other.
_LOG_LOCK_CLASS = 0x6D63
_INT4 = 2**31 - 1
# After the first notification, how long to gather those sent with it (psycopg reads a timeout of 0 as none).
_DRAIN_S = 0.005


def lock_cube(conn: psycopg.Connection[Any], cube_id: int) -> None:
    """Hold the cube's write lock to the end of the caller's transaction (taken again in one, it is held once more).

    Every write to a cube takes it first (``memory.store.postgres.cube_store``), so writers on any
    server queue as SQLite's ``BEGIN IMMEDIATE`` makes them queue; the log's ``queue`` takes it too.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOG_LOCK_CLASS, cube_id % _INT4))


def newest_change(conn: psycopg.Connection[Any], cube_id: int) -> int:
    """The sequence number of the cube's newest change (0: none): what caches of a cube's reads key on."""
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM change_log WHERE cube = %s", (cube_id,)).fetchone()
    return int(row[0]) if row else 0


class PostgresChangeLog:
    """The change log of one cube, as one follower (``follower``: a name unique per server and use) sees it."""

    def __init__(self, conn: psycopg.Connection[Any], cube_id: int, follower: str) -> None:
        self._conn = conn  # autocommit; reads and ``done`` run on it under ``_lock``
        self._lock = threading.Lock()
        self.cube_id = cube_id
        self.follower = follower

    def queue(self, conn: psycopg.Connection[Any], memory_ids: Iterable[str]) -> None:
        """Record that these memories changed, in the caller's transaction (``conn`` must be inside one)."""
        ids = list(memory_ids)
        if not ids:
            return
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
            raise RuntimeError("queue() joins the caller's write: call it inside a transaction")
        lock_cube(conn, self.cube_id)
        conn.execute(
            "INSERT INTO change_log (cube, memory_id, op) SELECT %s, unnest(%s::text[]), 'sync'",
            (self.cube_id, ids),
        )

    def pending(self, limit: int) -> list[Change]:
        """The oldest changes this follower has not applied, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, memory_id FROM change_log WHERE cube = %(cube)s AND seq > coalesce("
                "(SELECT seq FROM change_cursors WHERE cube = %(cube)s AND follower = %(follower)s), 0) "
                "ORDER BY seq LIMIT %(limit)s",
                {"cube": self.cube_id, "follower": self.follower, "limit": limit},
            ).fetchall()
        return [Change(int(seq), memory_id) for seq, memory_id in rows]

    def done(self, up_to_seq: int, *, rebuilt: bool = False) -> None:
        """This follower applied the changes up to ``up_to_seq`` (a place only moves forward);
        ``rebuilt``: it derived everything anew at that point."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO change_cursors (cube, follower, seq, rebuilt_at) "
                f"VALUES (%(cube)s, %(follower)s, %(seq)s, CASE WHEN %(rebuilt)s THEN {STORED_NOW} END) "
                "ON CONFLICT (cube, follower) DO UPDATE SET seq = greatest(change_cursors.seq, excluded.seq), "
                "rebuilt_at = coalesce(excluded.rebuilt_at, change_cursors.rebuilt_at)",
                {"cube": self.cube_id, "follower": self.follower, "seq": up_to_seq, "rebuilt": rebuilt},
            )

    def high(self) -> int:
        """The sequence number of the cube's newest change (0: none)."""
        with self._lock:
            return newest_change(self._conn, self.cube_id)

    def count(self) -> int:
        """How many changes this follower has not applied."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FROM change_log WHERE cube = %(cube)s AND seq > coalesce("
                "(SELECT seq FROM change_cursors WHERE cube = %(cube)s AND follower = %(follower)s), 0)",
                {"cube": self.cube_id, "follower": self.follower},
            ).fetchone()
        return int(row[0]) if row else 0


class ChangeListener:
    """Notifications of committed changes, on a connection of its own (``LISTEN`` needs one that stays open).

    It also hears changes of the access rules (``ACCESS_CHANNEL``): ``rules_changed`` says
    whether one came since it was last asked.
    """

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True)
        for channel in (CHANGES_CHANNEL, ACCESS_CHANNEL):
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self._rules_changed = False

    def rules_changed(self) -> bool:
        """Whether the access rules changed since the last call (heard by ``wait``)."""
        changed, self._rules_changed = self._rules_changed, False
        return changed

    def wait(self, timeout: float) -> dict[str, int]:
        """Block up to ``timeout`` seconds for changes; returns cube name -> the highest seq announced.

        Empty when nothing was committed in that time. Notifications that arrived together are
        merged: a follower reads the log past its place anyway.
        """
        announced: dict[str, int] = {}
        # One call at a time: the generator holds the connection's lock until it is exhausted.
        heard = list(self._conn.notifies(timeout=timeout, stop_after=1))
        if heard:
            heard += self._conn.notifies(timeout=_DRAIN_S)
        for notify in heard:
            if notify.channel == ACCESS_CHANNEL:
                self._rules_changed = True
                continue
            payload = json.loads(notify.payload)
            cube, seq = str(payload["cube"]), int(payload["seq"])
            announced[cube] = max(seq, announced.get(cube, 0))
        return announced

    def close(self) -> None:
        self._conn.close()
