"""A cube whose file another process holds locked is opened once the lock goes, and is never called damaged.

Four servers that opened one new cube at the same moment saw "cube 'default' is damaged: it
cannot be read (OperationalError: database is locked)" on a first memory_add (a full CI run of
tests/test_many_clients.py): some of SQLite's lock upgrades answer "locked" at once, without
waiting. Here a real second process holds the database's lock and the wait SQLite itself
grants (its busy timeout) is made short, so the first attempts are refused as they were then.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from memory.errors import Unavailable
from memory.home import MemoryHome
from memory.store import connection

HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("CREATE TABLE IF NOT EXISTS held (x)")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_cube_locked_for_a_moment_opens_when_the_lock_goes(tmp_path, shared_embedder, monkeypatch):
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 100)  # SQLite's own wait: shorter than the lock
    holder = hold_lock(tmp_path / "cubes" / "default" / "memory.db", 1.0)
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        started = time.monotonic()
        cube = home.cube()
        assert time.monotonic() - started >= 0.7  # it waited for the other process
        assert cube.stats().active == 0
    finally:
        home.close()
        holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()


def test_a_cube_locked_for_too_long_is_busy_not_damaged(tmp_path, shared_embedder, monkeypatch):
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr("memory.home.OPEN_RETRY_S", 0.5)
    holder = hold_lock(tmp_path / "cubes" / "default" / "memory.db", 3.0)
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        with pytest.raises(Unavailable) as refused:
            home.cube()
        message = str(refused.value)
        assert "busy" in message and "damaged" not in message, message
    finally:
        home.close()
        holder.terminate()  # its lock has made the point; no need to sit out the rest of it
        holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()
