"""A consistent copy of a cube's database while other processes write to it."""

from __future__ import annotations

from pathlib import Path

from memory.store import connection


def copy_database(source_path: Path, copy_path: Path) -> int:
    """Copy ``source_path`` to ``copy_path`` with SQLite's online backup API; returns the memories copied.

    The copy carries no graph: it is marked so that its first use derives the graph from SQLite.
    """
    source = connection.connect(source_path)
    copy = connection.connect(copy_path)
    try:
        source.backup(copy)
        copy.execute(
            "INSERT INTO cube_meta(key, value) VALUES ('graph_rebuild', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        )
        copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(copy.execute("SELECT count(*) FROM memories").fetchone()[0])
    finally:
        copy.close()
        source.close()
