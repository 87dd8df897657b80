"""Merging a cube's full-text indexes into one b-tree each once they have grown, in small steps.

Each write transaction gives an FTS5 index a new segment (a b-tree of its own). FTS5 merges
segments of a level as later writes come (``automerge``) but leaves several levels in a cube
built in batches, and a query reads every segment of each of its words, so merged indexes
search faster. How many segments a large cube holds, what merging saves a search and what a
merge costs are measured by ``bench/foundation.py --memories 100000`` (bench/RESULTS.md,
"A cube of 100,000 memories").

A full merge rewrites the whole index (seconds on a large cube), so it is done only once the cube has grown by ``GROWTH`` since the last one (and by ``MIN_NEW_ROWS`` at
least), when the caller has seen the cube go quiet: the server between calls, an import
at its end. It runs as FTS5's incremental ``merge`` command, ``STEP_PAGES`` pages per
transaction, so a writer waits for one step (a few milliseconds), not for the whole merge.
"""

from __future__ import annotations

import sqlite3

from memory.store import settings

TABLES = ("memory_fts", "memory_context_fts")
GROWTH = 0.1  # merge again once the cube holds 10% more memories than at the last merge
MIN_NEW_ROWS = 1_000  # and at least this many: a small cube's index is cheap to read anyway
STEP_PAGES = 64
MERGED_AT = "fulltext_merged_at_row"  # cube_meta: the highest memory row id when the indexes were last merged


def highest_row(conn: sqlite3.Connection) -> int:
    """The highest memory row id: it only grows, and reading it is one step down the table's b-tree."""
    return int(conn.execute("SELECT coalesce(max(row_id), 0) FROM memories").fetchone()[0])


def due(conn: sqlite3.Connection) -> bool:
    """Whether the cube has grown enough since the last merge for another to pay for itself."""
    row = conn.execute("SELECT value FROM cube_meta WHERE key = ?", (MERGED_AT,)).fetchone()
    merged_at = int(row[0]) if row else 0
    return highest_row(conn) - merged_at >= max(MIN_NEW_ROWS, GROWTH * merged_at)


def step(conn: sqlite3.Connection, table: str, *, first: bool) -> bool:
    """One step of merging ``table`` into a single b-tree, inside the caller's transaction; True while work remains.

    FTS5's rule: the first call of a merge has a negative page count (every segment joins one
    level, so all of them get merged); later ones a positive count, which carries that merge
    through to the end even when new segments arrive meanwhile. A step that changes fewer
    than two rows found nothing left to merge.
    """
    if table not in TABLES:
        raise ValueError(f"not a full-text table: {table!r}")
    before = conn.total_changes
    conn.execute(f"INSERT INTO {table}({table}, rank) VALUES ('merge', ?)", (-STEP_PAGES if first else STEP_PAGES,))
    return conn.total_changes - before >= 2


def mark_merged(conn: sqlite3.Connection, at_row: int) -> None:
    settings.set_meta(conn, MERGED_AT, str(at_row))
