"""SQLite connections with sqlite-vec loaded, whatever the interpreter's ``sqlite3`` can do.

Many Python builds (this project's CI machine, python.org and some Homebrew builds on
macOS) compile ``sqlite3`` without ``enable_load_extension``. ``sqlean.py`` ships its own
SQLite with extension loading enabled, so it is tried first; the standard library is the
fallback where it can load extensions.
"""

from __future__ import annotations

import logging
import sqlite3
from functools import cache
from pathlib import Path
from types import ModuleType

import sqlite_vec

from memory.errors import Unavailable

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


@cache
def _driver() -> ModuleType:
    """The first DB-API module whose connections can load sqlite-vec."""
    candidates: list[ModuleType] = []
    try:
        import sqlean

        candidates.append(sqlean)
    except ImportError:
        pass
    candidates.append(sqlite3)
    problems = []
    for module in candidates:
        probe = module.connect(":memory:")
        try:
            if not hasattr(probe, "enable_load_extension"):
                problems.append(f"{module.__name__}: no enable_load_extension")
                continue
            probe.enable_load_extension(True)
            sqlite_vec.load(probe)
            return module
        except Exception as exc:  # each driver fails in its own way; collect and try the next
            problems.append(f"{module.__name__}: {exc}")
        finally:
            probe.close()
    raise Unavailable(
        "no SQLite driver here can load sqlite-vec (" + "; ".join(problems) + "). "
        "Install 'sqlean.py' (pip install sqlean.py) or use a Python whose sqlite3 supports extensions."
    )


def driver_name() -> str:
    return _driver().__name__


def connect(path: Path | str) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with foreign keys, a busy timeout and sqlite-vec loaded.

    The connection is in autocommit mode (``isolation_level=None``): writers open their
    own ``BEGIN IMMEDIATE`` transactions so that two processes never deadlock upgrading
    a read lock to a write lock.
    """
    module = _driver()
    conn = module.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable in WAL mode against process crashes (the OS keeps the WAL);
    # only a power loss can drop the last commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Deleted content is overwritten, not left in free pages: a purge must erase the text.
    conn.execute("PRAGMA secure_delete = ON")
    return conn


def open_plain(path: Path | str) -> sqlite3.Connection:
    """A connection that only reads ``path``: no extension, no journal-mode change, ``query_only``.

    For looking at a file that may not be a cube's database (``memory.store.db_file``):
    ``connect`` would switch it to WAL, which writes to it.
    """
    conn = _driver().connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    return conn
