"""A MemCube home: the data directory that holds every cube and the shared embedder.

Layout::

    <home>/config.toml            optional settings (see memory.config)
    <home>/cubes/<cube>/memory.db SQLite: memories, versions, FTS5, sqlite-vec (source of truth)
    <home>/cubes/<cube>/graph/    Kuzu graph, derived from memory.store.connection
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from memory.config import DEFAULT_CUBE, check_cube_name, default_home, load_config
from memory.cube import MemCube
from memory.errors import InvalidInput, MemCubeError, NotFound
from memory.models import check_known_type
from memory.retrieval.embedder import Embedder
from memory.store import filemodes

log = logging.getLogger(__name__)


class MemoryHome:
    def __init__(self, root: Path | str | None = None, *, embedder: Embedder | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_home()
        self.config = load_config(self.root)
        self.embedder = embedder or Embedder(self.config.embedding.model_dir, compute=self.config.embedding.compute)
        self._cubes: dict[str, MemCube] = {}
        self._lock = threading.Lock()

    @property
    def cubes_dir(self) -> Path:
        return self.root / "cubes"

    @property
    def custom_types(self) -> tuple[str, ...]:
        return tuple(t.strip().lower() for t in self.config.types.custom)

    def check_types(self, types: list[str]) -> None:
        """Raise ``InvalidInput`` (with a near-miss suggestion) for a type neither built in nor declared."""
        for type_ in types:
            check_known_type(type_, self.custom_types)

    def cube_names(self) -> list[str]:
        if not self.cubes_dir.is_dir():
            return []
        return sorted(p.name for p in self.cubes_dir.iterdir() if (p / "memory.db").is_file() and check_cube_name_ok(p.name))

    def cube(self, name: str = DEFAULT_CUBE, *, create: bool = False) -> MemCube:
        """Open a cube. Reading a cube that does not exist is an error, except the default cube."""
        check_cube_name(name)
        with self._lock:
            cube = self._cubes.get(name)
            if cube is not None:
                return cube
            self._check_spelling(name)
            folder = self.cubes_dir / name
            if not (folder / "memory.db").is_file() and not create and name != DEFAULT_CUBE:
                known = ", ".join(self.cube_names()) or "none yet"
                raise NotFound(f"no cube '{name}' (existing cubes: {known}); adding a memory to it creates it")
            # Private whatever the umask (issue 13): 0700 folders, a 0600 database whose
            # -wal and -shm files SQLite creates with the same mode.
            filemodes.private_dir(folder)
            filemodes.private_dir(folder / "graph")
            filemodes.private_file(folder / "memory.db")
            cube = MemCube(name, folder, self.embedder, custom_types=self.custom_types)
            self._cubes[name] = cube
            return cube

    def _check_spelling(self, name: str) -> None:
        """Refuse a name that differs from an existing cube's only in case.

        On a case-insensitive file system (macOS, Windows) ``Home`` and ``home`` are one
        folder, but two names to the ``[access]`` rules: a client refused ``home`` could
        read it as ``Home``. So a cube has one spelling, the one its folder was made with.
        """
        try:
            entries = os.listdir(self.cubes_dir)
        except OSError:
            return
        folded = name.casefold()
        for entry in entries:
            if entry != name and entry.casefold() == folded:
                raise InvalidInput(f"cube '{name}' differs only in case from the existing cube '{entry}': use '{entry}'")

    def open_cubes(self) -> list[MemCube]:
        with self._lock:
            return list(self._cubes.values())

    def close(self) -> None:
        with self._lock:
            cubes, self._cubes = list(self._cubes.values()), {}
        for cube in cubes:
            try:
                cube.close()
            except MemCubeError as exc:  # e.g. a full disk: the rest still closes (issue 13)
                log.error("cube %s did not close cleanly: %s", cube.name, exc)
                cube.graph_store.close()
                cube.store.close()


def check_cube_name_ok(name: str) -> bool:
    try:
        check_cube_name(name)
    except Exception:
        return False
    return True
