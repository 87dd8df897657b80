"""A consistent copy of a MemCube home, taken while servers keep running.

Each cube's SQLite file is copied with SQLite's online backup API, which yields a
snapshot as of one transaction even while other processes write. The Kuzu graph is not
copied: it is derived, and a copy taken at another instant could disagree with the
snapshot. Instead the copy is marked so that the first process to open it rebuilds the
graph from SQLite. ``config.toml`` is copied as is.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from memory.store import connection as db
from memory.errors import InvalidInput
from memory.home import MemoryHome


@dataclass
class BackupReport:
    destination: Path
    cubes: dict[str, int]  # cube -> memories copied (any status)


def backup_home(home: MemoryHome, destination: Path | str) -> BackupReport:
    target = Path(destination).expanduser()
    if target.exists() and any(target.iterdir()):
        raise InvalidInput(f"{target} is not empty; back up into a new folder")
    if target.resolve().is_relative_to(home.root.resolve()):
        raise InvalidInput("the backup cannot go inside the home it copies")
    target.mkdir(parents=True, exist_ok=True)
    copied: dict[str, int] = {}
    for name in home.cube_names():
        source_path = home.cubes_dir / name / "memory.db"
        copy_path = target / "cubes" / name / "memory.db"
        copy_path.parent.mkdir(parents=True)
        source = db.connect(source_path)
        copy = db.connect(copy_path)
        try:
            source.backup(copy)
            copy.execute(
                "INSERT INTO cube_meta(key, value) VALUES ('graph_rebuild', '1') "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            )
            copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            copied[name] = copy.execute("SELECT count(*) FROM memories").fetchone()[0]
        finally:
            copy.close()
            source.close()
    config = home.root / "config.toml"
    if config.is_file():
        shutil.copy2(config, target / "config.toml")
    return BackupReport(destination=target, cubes=copied)
