"""Room on the disk for the graph's writes (issue 26).

Kuzu does not report a full disk during a commit or a checkpoint: it ends the whole process
(SIGSEGV, or SIGABRT with "Invalid transaction type to rollback"), and the next start,
applying the same queued work, ends the same way. No exception handler can catch that, so
the graph is written only with room to spare. Short of room it pauses: memories are still
stored and searched in SQLite, the outbox keeps the graph's work, and the graph catches up
once space is freed. A graph that is up to date can still be read (Kuzu's read-only mode
writes nothing).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

MIB = 1024 * 1024
# Always left free by a graph write: a fresh graph takes about 2 MiB with its shadow file.
FLOOR_BYTES = 8 * MIB
# Per node or edge a write adds (memories, mentions, relations, links): 5,000 memories of 5
# items each peaked at 14.6 MB from an empty graph (bench/RESULTS.md, issue 26), under 600 bytes each.
ITEM_BYTES = 1024


def free_bytes(folder: Path) -> int:
    """Free bytes for this user on the file system holding ``folder`` (or its nearest existing parent)."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def graph_bytes(path: Path) -> int:
    """Bytes the graph's files take (the database, its WAL and shadow file)."""
    total = 0
    for file in path.parent.glob(path.name + "*"):
        try:
            total += file.stat().st_size
        except OSError:  # gone meanwhile
            continue
    return total


def unsettled_bytes(path: Path) -> int:
    """Bytes in the graph's WAL and shadow file: what its next checkpoint copies (twice at most)."""
    total = 0
    for suffix in (".wal", ".shadow"):
        try:
            total += path.with_name(path.name + suffix).stat().st_size
        except OSError:  # none
            continue
    return total


def shortfall(path: Path, items: int = 0, *, keep: int = 0) -> str | None:
    """Why the graph at ``path`` must not be opened for writing now, or None when there is room.

    Args:
        path: the graph database (``graph/graph.kuzu``).
        items: nodes and edges the write adds.
        keep: bytes the write keeps besides its own (a rebuild keeps the old graph until it commits).
    """
    need = FLOOR_BYTES + items * ITEM_BYTES + keep + 2 * unsettled_bytes(path)
    free = free_bytes(path.parent)
    if free >= need:
        return None
    return (
        f"the graph is paused: the disk holding {path.parent} has {math.floor(free / MIB * 10) / 10:.1f} MiB free, "
        f"and writing the graph safely needs {math.ceil(need / MIB * 10) / 10:.1f} MiB. Memories are still stored "
        "and searched; the graph catches up by itself once space is freed there"
    )
