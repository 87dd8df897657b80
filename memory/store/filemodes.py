"""Private file modes for everything under a MemCube home (issue 13).

Memories are personal: other accounts on the machine must not read them, whatever the
umask (the common 022 makes new folders 0755 and files 0644). Folders are made 0700 and
files 0600 when MemCube creates them; ``tighten`` repairs a tree that is wider than that
(the doctor reports how many it fixed). SQLite gives its ``-wal`` and ``-shm`` files the
mode of the database file, so creating ``memory.db`` as 0600 covers them too; Kuzu's
files are tightened after it creates them, and sit in a 0700 folder meanwhile.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
OTHERS = stat.S_IRWXG | stat.S_IRWXO  # any permission for the group or for others


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700 folders; an existing folder is left as it is."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # another process made it first
        os.chmod(folder, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if it does not exist (so SQLite and others inherit 0600)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    os.chmod(path, FILE_MODE)
    return path


@dataclass
class ModeReport:
    """What ``tighten`` found open to others, and fixed."""

    found: list[str] = field(default_factory=list)
    fixed: int = 0


def exposed(path: Path) -> bool:
    try:
        return bool(os.lstat(path).st_mode & OTHERS)
    except OSError:
        return False


def tighten(root: Path, *, repair: bool = True) -> ModeReport:
    """Every folder under ``root`` (and ``root``) to 0700, every file to 0600; symlinks are not followed."""
    report = ModeReport()
    if not root.is_dir():
        return report
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for path, mode in [(base, DIR_MODE)] + [(base / f, FILE_MODE) for f in files]:
            try:
                info = os.lstat(path)
            except OSError:
                continue  # vanished meanwhile
            if stat.S_ISLNK(info.st_mode) or not info.st_mode & OTHERS:
                continue
            report.found.append(str(path))
            if repair:
                try:
                    os.chmod(path, mode)
                    report.fixed += 1
                except OSError:
                    pass  # not ours (another user's file): reported, not fixed
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
    return report
