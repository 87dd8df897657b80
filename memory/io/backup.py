"""A consistent copy of a MemCube home, taken while servers keep running.

Each cube's SQLite file is copied with SQLite's online backup API, which yields a
snapshot as of one transaction even while other processes write. The Kuzu graph is not
copied: it is derived, and a copy taken at another instant could disagree with the
snapshot. Instead the copy is marked so that the first process to open it rebuilds the
graph from SQLite. ``config.toml`` is copied as is.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from memory.errors import InvalidInput, NotFound
from memory.home import MemoryHome
from memory.store import db_file
from memory.store.backup import copy_database


@dataclass
class BackupReport:
    destination: Path
    cubes: dict[str, int]  # cube -> memories copied (any status)
    damaged: dict[str, str] = field(default_factory=dict)  # cube -> why it was not copied (issue 26)


def backup_home(home: MemoryHome, destination: Path | str) -> BackupReport:
    if home.store is not None:  # the folder holds only derived graphs; the memories are the database's
        raise InvalidInput(
            "this home's cubes live in the PostgreSQL store: back the database up with its own tools "
            "(pg_dump, or the managed service's backups); `memcube export` writes one cube to an archive"
        )
    target = Path(destination).expanduser()
    if target.exists() and any(target.iterdir()):
        raise InvalidInput(f"{target} is not empty; back up into a new folder")
    if target.resolve().is_relative_to(home.root.resolve()):
        raise InvalidInput("the backup cannot go inside the home it copies")
    if not home.root.is_dir():  # a mistyped home: an empty "backup" would look like a good one
        raise NotFound(f"no MemCube home at {home.root}: nothing to back up")
    target.mkdir(parents=True, exist_ok=True)
    copied: dict[str, int] = {}
    damaged: dict[str, str] = {}
    for name in home.cube_names():
        source_path = home.cubes_dir / name / "memory.db"
        if (problem := db_file.damage(source_path)) is not None:  # one damaged cube: the others are still copied
            damaged[name] = problem
            continue
        copy_path = target / "cubes" / name / "memory.db"
        copy_path.parent.mkdir(parents=True)
        copied[name] = copy_database(source_path, copy_path)
    config = home.root / "config.toml"
    if config.is_file():
        shutil.copy2(config, target / "config.toml")
    return BackupReport(destination=target, cubes=copied, damaged=damaged)
