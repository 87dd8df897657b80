"""The PostgreSQL store as one server sees it: its cubes, its access rules, and the changes others make.

A server names itself (``server``: its host and data folder), and every cube it opens
follows the cube's change log under that name (``graph@<server>``): each server's local
graph keeps its own place in the log, whatever the others have applied.

The access rules every server enforces are the store's (``access_rules``), read when the
store opens, when a listener starts, and by ``refresh_access`` when the listener hears that
they changed (``tools.runtime.ToolRuntime.run_store_changes``; the schema's triggers announce
every change at commit), so no request waits on the database for them. ``listen`` and ``changed_since`` tell a server which
memories other servers changed, so it can tell its clients' subscriptions.
"""

from __future__ import annotations

import threading

from memory.access_rules import AccessConfig
from memory.store.postgres.access import load_access
from memory.store.postgres.change_log import ChangeListener
from memory.store.postgres.connect import connect
from memory.store.postgres.cube_store import PostgresCubeStore
from memory.store.postgres.schema import migrate


class SharedStore:
    def __init__(self, url: str, *, server: str) -> None:
        self.url = url
        self.server = server
        self._lock = threading.Lock()
        self._conn = connect(url)
        try:
            migrate(self._conn)  # once per database and version: a second server finds it done
            self.access: AccessConfig = load_access(self._conn)
        except BaseException:
            self._conn.close()
            raise
        self._heard: dict[str, int] = {}  # cube -> the newest change this server has told its clients of

    def cube_names(self) -> list[str]:
        with self._lock:
            return [str(r[0]) for r in self._conn.execute("SELECT name FROM cubes ORDER BY name")]

    def open_cube(self, name: str) -> PostgresCubeStore:
        """The store's cube ``name`` (made by its first write if the store has none of that name)."""
        return PostgresCubeStore(self.url, name, follower=f"graph@{self.server}")

    def refresh_access(self) -> None:
        """Read the access rules again (an admin may have changed them: ``memcube access --store``)."""
        with self._lock:
            self.access = load_access(self._conn)

    def listen(self) -> ChangeListener:
        """A listener for other servers' commits and rule changes; changes before this call are not
        reported by ``changed_since``, and the rules are read again (any change missed while no
        listener was up is then in)."""
        listener = ChangeListener(self.url)
        with self._lock:
            self.access = load_access(self._conn)
            self._heard = {
                str(name): int(seq)
                for name, seq in self._conn.execute(
                    "SELECT c.name, coalesce(max(l.seq), 0) FROM cubes c LEFT JOIN change_log l ON l.cube = c.id GROUP BY c.name"
                )
            }
        return listener

    def changed_since(self, announced: dict[str, int]) -> dict[str, list[str]]:
        """The memories changed in each announced cube since the last call, in the order they changed."""
        changed: dict[str, list[str]] = {}
        with self._lock:
            for cube in announced:
                rows = self._conn.execute(
                    "SELECT l.seq, l.memory_id FROM change_log l JOIN cubes c ON c.id = l.cube "
                    "WHERE c.name = %s AND l.seq > %s ORDER BY l.seq",
                    (cube, self._heard.get(cube, 0)),
                ).fetchall()
                if rows:
                    self._heard[cube] = int(rows[-1][0])
                    changed[cube] = list(dict.fromkeys(str(r[1]) for r in rows))
        return changed

    def close(self) -> None:
        with self._lock:
            self._conn.close()
