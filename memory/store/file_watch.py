"""Notice when a cube's database file or its write-ahead log is deleted or replaced (issues 13, 26).

SQLite keeps writing to the files it opened. If an operator (or a sync tool, or a
clean-up script) deletes ``memory.db-wal`` under a running server, every later commit
goes to a file nobody will ever read again, and is lost at restart without a word. So
each write transaction first, and after its commit, compares the files at the paths
with the ones opened (device and inode); reads and closing the cube look too. While this
process has the database open SQLite never deletes the WAL itself (only the last
connection to close does), so the WAL keeps one identity for the whole time.

On a mismatch the cube first saves what its open connection still sees, then stops
writing and says where everything is (issue 26):

- the WAL deleted or replaced: memory.db is still the file at its path, so a checkpoint
  through the open connection copies every committed change out of the nameless log into
  it; a different log found at the path is moved aside, or the next open would replay it
  onto memory.db.
- memory.db deleted or replaced: SQLite's backup API copies the connection's view into
  ``memory.db.rescued-<time>`` beside it. When nothing stands at memory.db any more the
  copy goes back there; a replacement is left as it is, and the copy waits beside it for
  the operator (``memcube doctor`` compares them). The old file's -wal and -shm go: they
  belong to the old file and would be replayed onto the new one.

A rescue that fails (a full disk) changes nothing and is tried again at the next write;
until one succeeds, writes are refused with the reason.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from memory.errors import Unavailable
from memory.store import connection, filemodes
from memory.store.db_file import RESCUED

log = logging.getLogger(__name__)

Identity = tuple[int, int]


def identity(path: Path) -> Identity | None:
    """The file at ``path`` itself (a symbolic link is not followed: one put there is a replacement)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


@dataclass(frozen=True)
class Change:
    """A file this process opened that is no longer the one at its path."""

    database: bool  # memory.db itself, else its write-ahead log
    deleted: bool  # else replaced by another file

    def describe(self, watch: FileWatch) -> str:
        what = str(watch.db_path) if self.database else f"its write-ahead log {watch.wal_path.name}"
        return f"{what} was {'deleted' if self.deleted else 'replaced'}"


class FileWatch:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.wal_path = db_path.with_name(db_path.name + "-wal")
        self.shm_path = db_path.with_name(db_path.name + "-shm")
        self._db = identity(db_path)
        self._wal = identity(self.wal_path)
        self._shm = identity(self.shm_path)
        self._broken: str | None = None
        # Where a new connection sees what the open ones see: memory.db, or the rescued copy once
        # memory.db was replaced; None while a replaced or deleted database is not saved yet.
        self.read_path: Path | None = db_path

    def change(self) -> Change | None:
        """What is no longer the file this process writes to, if anything."""
        db_now = identity(self.db_path)
        if db_now != self._db:
            return Change(database=True, deleted=db_now is None)
        wal_now = identity(self.wal_path)
        if self._wal is None:  # the first write transaction made it
            self._wal = wal_now
            self._shm = self._shm or identity(self.shm_path)
        elif wal_now != self._wal:
            return Change(database=False, deleted=wal_now is None)
        return None

    def check(self, conn: sqlite3.Connection) -> None:
        """Before a write: raise ``Unavailable`` if the database or its WAL is no longer the file this
        process writes to, once every change this connection sees is saved (or saying that it is not)."""
        if self._broken is None:
            change = self.change()
            if change is None:
                return
            self._broken = self._rescue(conn, change)
            log.warning("%s", self._broken)
        raise Unavailable(self._broken)

    def watch(self, conn: sqlite3.Connection, *, wait: bool = True) -> None:
        """After a commit, before a read or a close: save everything if a file went away, without
        refusing what already succeeded. Raises ``Unavailable`` only when the saving failed.

        ``wait=False`` (before a read): the checkpoint does not wait for other connections, one of
        which may be this thread's own second view."""
        if self._broken is None and (change := self.change()) is not None:
            self._broken = self._rescue(conn, change, wait=wait)
            log.warning("%s", self._broken)

    def _rescue(self, conn: sqlite3.Connection, change: Change, *, wait: bool = True) -> str:
        what = f"{change.describe(self)} while this server had the cube open"
        if change.database:
            self.read_path = None
        try:
            saved = self._copy_out(conn) if change.database else self._checkpoint(conn, wait=wait)
        except Exception as exc:  # a full disk, an I/O error: nothing was removed; the next write tries again
            raise Unavailable(
                f"{what}, and saving its changes failed ({type(exc).__name__}: {exc}): this server writes nothing "
                "more to it until they are saved, and they exist only in the files it still has open, so keep it "
                "running, free some space (or end what holds the cube), then try again"
            ) from exc
        return (
            f"{what}: {saved}. This server stopped writing to it: restart the MCP client (or memcube serve), "
            "then run `memcube doctor`"
        )

    def _checkpoint(self, conn: sqlite3.Connection, *, wait: bool) -> str:
        """The WAL went away: copy its committed frames into memory.db through the handle still open.

        TRUNCATE also empties the nameless log, so a process that still holds it reads nothing
        stale from it later. A reader may keep it from emptying; what counts is that every frame
        reached memory.db (``checkpointed == frames``)."""
        conn.execute(f"PRAGMA busy_timeout = {connection.BUSY_TIMEOUT_MS if wait else 0}")
        try:
            _, frames, copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {connection.BUSY_TIMEOUT_MS}")
        if frames < 0 or copied < frames:
            raise RuntimeError(f"another connection kept the checkpoint from finishing ({copied} of {frames} pages copied)")
        said = (
            "every change it had acknowledged was first saved into memory.db through the connection it still "
            "had open (a checkpoint), so none is lost"
        )
        found = identity(self.wal_path)
        if found is not None and found != self._wal:
            # Not this database's log: replayed onto memory.db at the next open, it would undo or corrupt it.
            aside = _free_name(self.wal_path.with_name(f"{self.wal_path.name}.replaced-{_stamp()}"))
            os.rename(self.wal_path, aside)
            said += f"; the file found at {self.wal_path.name} was moved to {aside.name}"
        return said

    def _copy_out(self, conn: sqlite3.Connection) -> str:
        """memory.db went away: copy the open connection's view beside it, and back in place if the place is free."""
        rescue = _free_name(self.db_path.with_name(f"{self.db_path.name}{RESCUED}{_stamp()}"))
        try:
            held = _copy(conn, rescue)
        except BaseException:  # a partial copy is nobody's data; the open files still hold everything
            for leftover in (rescue, rescue.with_name(rescue.name + "-wal"), rescue.with_name(rescue.name + "-shm")):
                leftover.unlink(missing_ok=True)
            raise
        # From here on the copy may be the only one: it is never removed. The old file's log and
        # index go: replayed onto another memory.db they would corrupt it.
        for path, opened in ((self.wal_path, self._wal), (self.shm_path, self._shm)):
            if opened is not None and identity(path) == opened:
                path.unlink()
        saved = f"every change it had acknowledged ({held} memories) was copied from the connection it still had open"
        self.read_path = rescue
        if identity(self.db_path) is None:
            try:
                os.link(rescue, self.db_path)  # never over a file that appeared meanwhile
            except FileExistsError:
                pass
            except OSError as exc:  # no hard links here: the copy waits beside the free place
                return (
                    f"{saved} to {rescue} (SQLite's backup API), so none is lost, but it could not be put back as "
                    f"memory.db ({exc.strerror or exc}): stop every server on this home and move it to memory.db"
                )
            else:
                self.read_path = self.db_path
                rescue.unlink()
                return f"{saved} back to memory.db (SQLite's backup API), so none is lost"
        return (
            f"{saved} to {rescue} (SQLite's backup API); the file now at memory.db was left as it is. To keep the "
            f"saved memories, stop every server on this home and move {rescue.name} over memory.db "
            "(`memcube doctor` compares the two)"
        )


def _copy(conn: sqlite3.Connection, target_path: Path) -> int:
    """Copy what ``conn`` sees to a new private file with SQLite's backup API; the memories it holds."""
    filemodes.private_file(target_path)
    target = connection.connect(target_path)
    try:
        conn.backup(target)
        target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        copied = int(target.execute("SELECT count(*) FROM memories").fetchone()[0])
    finally:
        target.close()
    held = int(conn.execute("SELECT count(*) FROM memories").fetchone()[0])
    if copied != held:
        raise RuntimeError(f"the copy holds {copied} memories, the open database {held}")
    return held


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def disk_full(exc: BaseException) -> bool:
    """SQLITE_FULL, whichever DB-API driver raised it (sqlite3 or sqlean)."""
    return "database or disk is full" in str(exc)


def full_disk_error(path: Path) -> Unavailable:
    return Unavailable(
        f"the disk holding {path.parent} is full (or the database reached its size limit): nothing was changed. "
        "Free some space there and try again"
    )
