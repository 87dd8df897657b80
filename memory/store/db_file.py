"""Is a cube's ``memory.db`` a MemCube database at all? (issue 26)

Opening a file with SQLite proves little and may change it: a 0-byte file opens as an
empty database (and the first migration fills it with empty tables, after which it looks
like a cube that never held a memory), and a symbolic link is followed to whatever file it
names, another cube's or none of MemCube's. So the file is looked at first: a cube whose
file fails is reported as damaged, with the reason, and not opened.

``quick_damage`` reads a few bytes, for every open of a cube; ``damage`` also asks SQLite
for the tables, without writing, for ``memcube doctor``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from memory.store import connection

SQLITE_HEADER = b"SQLite format 3\x00"
RESCUED = ".rescued-"  # memory.db.rescued-<time>: saved by a server whose memory.db went away (file_watch)


def quick_damage(path: Path) -> str | None:
    """Why ``path`` cannot be a cube's database, from the file alone; None when it may be (or does not exist)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    if stat.S_ISLNK(info.st_mode):
        return (
            f"{path.name} is a symbolic link (to {os.readlink(path)}); a cube's database must be a file in its own "
            "folder, so MemCube does not follow it"
        )
    if not stat.S_ISREG(info.st_mode):
        return f"{path.name} is not a regular file"
    if info.st_nlink > 1 and not _linked_to_rescued_copy(path, info):
        # SQLite names its -wal and -shm files after the name it was given: two names for one
        # database, e.g. another cube's (``cp -al``), give it two logs and mix two cubes (R1).
        return (
            f"{path.name} has {info.st_nlink - 1} other name(s) (a hard link, e.g. another cube's memory.db): SQLite "
            "would keep a separate log for each name and corrupt it, so MemCube does not open it. Give each cube its "
            "own copy (`cp` without -l), then remove the extra names"
        )
    if info.st_size == 0:
        return None  # a new cube's file, before its first transaction; ``damage`` says more
    try:
        with open(path, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    if head != SQLITE_HEADER:
        return f"{path.name} is not a SQLite database (it begins with {head[:16]!r})"
    return None


def _linked_to_rescued_copy(path: Path, info: os.stat_result) -> bool:
    """A server put a rescued copy back as ``path`` by a hard link and stopped before removing the copy's name."""
    for copy in rescued_copies(path):
        try:
            other = os.lstat(copy)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino) and info.st_nlink == 2:
            return True
    return False


def damage(path: Path) -> str | None:
    """``quick_damage``, then through SQLite (read-only): a database that holds MemCube's tables."""
    if (problem := quick_damage(path)) is not None:
        return problem
    if not path.exists():
        return f"{path.name} is missing"
    try:
        tables = table_names(path)
    except Exception as exc:  # SQLite says why: not a database, malformed, locked
        return f"{path.name} cannot be read by SQLite ({type(exc).__name__}: {exc})"
    if "memories" not in tables:
        if path.stat().st_size == 0:
            return f"{path.name} is empty (0 bytes): it holds no memories"
        shown = ", ".join(sorted(tables)[:5]) or "none"
        return f"{path.name} holds no MemCube tables (its tables: {shown}): it holds no memories"
    return None


def table_names(path: Path) -> set[str]:
    """The tables of the database at ``path``, read without writing anything."""
    conn = connection.open_plain(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def known_ids(path: Path) -> set[str]:
    """Every memory id the database at ``path`` has a row or a version of (a purge leaves a version)."""
    conn = connection.open_plain(path)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM memories UNION SELECT memory_id FROM memory_versions")}
    finally:
        conn.close()


def rescued_copies(path: Path) -> list[Path]:
    """Copies saved beside ``path`` by a server whose ``path`` was deleted or replaced, oldest first."""
    return sorted(p for p in path.parent.glob(path.name + RESCUED + "*") if not p.name.endswith(("-wal", "-shm")))


def locked(exc: BaseException) -> bool:
    """Whether SQLite refused because another connection holds the file's lock (busy), not because it is bad.

    By message: the standard library's ``sqlite3`` and ``sqlean`` raise their own exception classes.
    """
    message = str(exc).lower()
    return type(exc).__name__ == "OperationalError" and ("database is locked" in message or "database is busy" in message)
