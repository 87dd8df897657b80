"""Notice when a cube's database file or its write-ahead log is deleted or replaced (issue 13).

SQLite keeps writing to the files it opened. If an operator (or a sync tool, or a
clean-up script) deletes ``memory.db-wal`` under a running server, every later commit
goes to a file nobody will ever read again, and is lost at restart without a word. So
each write transaction first, and after its commit, compares the files at the paths
with the ones opened (device and inode); on a mismatch the cube stops writing and says
why. While this process has the database open SQLite never deletes the WAL itself (only
the last connection to close does), so the WAL keeps one identity for the whole time.
"""

from __future__ import annotations

import os
from pathlib import Path

from memory.errors import Unavailable

Identity = tuple[int, int]


def identity(path: Path) -> Identity | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


class FileWatch:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.wal_path = db_path.with_name(db_path.name + "-wal")
        self._db = identity(db_path)
        self._wal = identity(self.wal_path)
        self._broken: str | None = None

    def check(self) -> None:
        """Raise ``Unavailable`` if the database or its WAL is no longer the file this process writes to."""
        if self._broken is None:
            db_now = identity(self.db_path)
            if db_now != self._db:
                self._broken = f"{self.db_path} was {'deleted' if db_now is None else 'replaced'}"
            else:
                wal_now = identity(self.wal_path)
                if self._wal is None:
                    self._wal = wal_now  # the first write transaction made it
                elif wal_now != self._wal:
                    self._broken = f"its write-ahead log {self.wal_path.name} was {'deleted' if wal_now is None else 'replaced'}"
        if self._broken is not None:
            raise Unavailable(
                f"{self._broken} while this server had the cube open, so writes would be lost: "
                "this server stopped writing to it. Restart the MCP client (or memcube serve), then run `memcube doctor`; "
                "changes made since the file went away may be missing"
            )


def disk_full(exc: BaseException) -> bool:
    """SQLITE_FULL, whichever DB-API driver raised it (sqlite3 or sqlean)."""
    return "database or disk is full" in str(exc)


def full_disk_error(path: Path) -> Unavailable:
    return Unavailable(
        f"the disk holding {path.parent} is full (or the database reached its size limit): nothing was changed. "
        "Free some space there and try again"
    )
