"""An exclusive lock between processes on an open file, with a timeout.

POSIX ``flock`` and Windows ``msvcrt.locking`` both release the lock when the process
dies, so a crashed server never leaves a graph locked.
"""

from __future__ import annotations

import sys
import time
from typing import IO

POLL_S = 0.02


def _try_lock(handle: IO[bytes]) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def acquire(handle: IO[bytes], timeout: float) -> bool:
    """Take the lock, waiting up to ``timeout`` seconds; False if it stayed taken."""
    deadline = time.monotonic() + timeout
    while not _try_lock(handle):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def release(handle: IO[bytes]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
