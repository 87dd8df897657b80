"""Fork-join helper: run a piece of one call on another thread while the caller goes on.

A search embeds its query and scores every vector while SQLite ranks keywords. ONNX
Runtime, numpy and SQLite all release the GIL, so on a two-core laptop the two halves
overlap instead of adding up. This is not for background work (anyio task groups own
that, in the server): every future handed out here is waited on by the call that made it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()


def _mark_worker() -> None:
    _local.worker = True


def soon(fn: Callable[[], T]) -> Future[T]:
    """Start ``fn`` on a shared worker thread; the caller must call ``result()`` on what comes back.

    Called from one of those threads, ``fn`` runs at once on it instead: a job that waits on
    jobs queued behind it could otherwise hold every worker and never finish.
    """
    global _pool
    if getattr(_local, "worker", False):
        done: Future[T] = Future()
        try:
            done.set_result(fn())
        except BaseException as exc:  # handed to the caller through result(), like a pool job's
            done.set_exception(exc)
        return done
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="memcube-fork", initializer=_mark_worker
            )
    return _pool.submit(fn)
