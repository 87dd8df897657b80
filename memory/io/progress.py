"""How far long work in ``memory.io`` has got, told to whoever runs it.

An import of a large archive runs for minutes; the CLI draws a bar, the web UI shows a
job's phase. Both get the same calls: ``progress(stage, done, total)`` after each step,
``total`` None when not known. A callback keeps ``memory`` free of any interface code.
"""

from __future__ import annotations

from collections.abc import Callable

# (stage, done, total or None)
Progress = Callable[[str, int, int | None], None]

CHECKING = "checking"  # validating every record before anything is written
IMPORTING = "importing"  # records written (whole chunks, committed)
EMBEDDING = "embedding"  # memories left without a vector, embedded after the records
GRAPH = "graph"  # queued graph changes applied


def silent(stage: str, done: int, total: int | None) -> None:
    """The progress callback of a caller that shows none."""
