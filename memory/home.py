"""A MemCube home: the data directory that holds every cube and the shared embedder.

Layout::

    <home>/config.toml            optional settings (see memory.config)
    <home>/cubes/<cube>/memory.db SQLite: memories, versions, FTS5, sqlite-vec (source of truth)
    <home>/cubes/<cube>/graph/    Kuzu graph, derived from memory.store.connection
"""

from __future__ import annotations

import threading
from pathlib import Path

from memory.config import DEFAULT_CUBE, check_cube_name, default_home, load_config
from memory.cube import MemCube
from memory.retrieval.embedder import Embedder
from memory.errors import NotFound
from memory.models import check_known_type


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
            folder = self.cubes_dir / name
            if not (folder / "memory.db").is_file() and not create and name != DEFAULT_CUBE:
                known = ", ".join(self.cube_names()) or "none yet"
                raise NotFound(f"no cube '{name}' (existing cubes: {known}); adding a memory to it creates it")
            cube = MemCube(name, folder, self.embedder, custom_types=self.custom_types)
            self._cubes[name] = cube
            return cube

    def open_cubes(self) -> list[MemCube]:
        with self._lock:
            return list(self._cubes.values())

    def close(self) -> None:
        with self._lock:
            cubes, self._cubes = list(self._cubes.values()), {}
        for cube in cubes:
            cube.close()


def check_cube_name_ok(name: str) -> bool:
    try:
        check_cube_name(name)
    except Exception:
        return False
    return True
