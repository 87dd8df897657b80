"""A MemCube home: the data directory that holds every cube and the shared embedder.

Layout::

    <home>/config.toml            optional settings (see memory.config)
    <home>/cubes/<cube>/memory.db SQLite: memories, versions, FTS5, sqlite-vec (source of truth)
    <home>/cubes/<cube>/graph/    Kuzu graph, derived from memory.store.connection

With a PostgreSQL store configured (``[store] url``, ``MEMCUBE_STORE``), the cubes' memories
live in the store, shared by every server on it; the data folder keeps each cube's local
Kuzu graph (``cubes/<cube>/graph/``), which follows the store's change log.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from memory.access_rules import AccessConfig
from memory.config import DEFAULT_CUBE, check_cube_name, default_home, load_config
from memory.cube import MemCube
from memory.errors import InvalidInput, MemCubeError, NotFound, Unavailable
from memory.models import CubeStats, DamagedCube, check_known_type
from memory.retrieval.embedder import Embedder
from memory.store import db_file, filemodes

if TYPE_CHECKING:
    from memory.store.postgres.shared_store import SharedStore

log = logging.getLogger(__name__)
# How long opening a cube goes on trying while another process holds its file locked (``MemoryHome._open``).
OPEN_RETRY_S = 15.0


class MemoryHome:
    def __init__(self, root: Path | str | None = None, *, embedder: Embedder | None = None, folder_only: bool = False) -> None:
        """``folder_only``: the data folder's own cubes even when a store is configured (``memcube migrate`` reads them)."""
        self.root = Path(root).expanduser() if root is not None else default_home()
        self.config = load_config(self.root)
        self.embedder = embedder or Embedder(self.config.embedding.model_dir, compute=self.config.embedding.compute)
        self._cubes: dict[str, MemCube] = {}
        self._lock = threading.Lock()
        self.store: SharedStore | None = None
        if self.config.store.url and not folder_only:
            try:
                from memory.store.postgres.shared_store import SharedStore  # the driver loads only for a store
            except ImportError:
                raise Unavailable(
                    "a PostgreSQL store is configured ([store] url or MEMCUBE_STORE) and its driver is not installed: "
                    "uv sync --extra postgres (or pip install 'memcube-mcp[postgres]')"
                ) from None
            self.store = SharedStore(self.config.store.url, server=f"{socket.gethostname()}:{self.root.resolve()}")

    def access_rules(self) -> AccessConfig:
        """The rules every call is checked against: the store's, shared by its servers, else config.toml's ``[access]``."""
        return self.store.access if self.store is not None else self.config.access

    @property
    def access_rules_place(self) -> str:
        """Where ``access_rules`` come from, as a refusal names it."""
        if self.store is not None:
            return "the store's access rules (`memcube access show`, changed with `memcube access push`)"
        return f"the [access] rules of {self.root / 'config.toml'}"

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
        if self.store is not None:
            return self.store.cube_names()
        if not self.cubes_dir.is_dir():
            return []
        # A symbolic link counts too: listed, so that it is reported as damaged (issue 26).
        return sorted(
            p.name
            for p in self.cubes_dir.iterdir()
            if ((p / "memory.db").is_file() or (p / "memory.db").is_symlink()) and check_cube_name_ok(p.name)
        )

    def every_stats(self) -> list[CubeStats | DamagedCube]:
        """The counts of every cube; one that cannot be opened or read is listed as damaged, with the
        reason, and the others are still counted (issue 26)."""
        listed: list[CubeStats | DamagedCube] = []
        for name in self.cube_names():
            try:
                listed.append(self.cube(name).stats())
            except Exception as exc:  # one damaged cube must not hide the others
                log.info("cube %s left out of the counts: %s", name, exc)
                listed.append(DamagedCube(cube=name, damaged=damage_reason(name, exc), path=str(self.cubes_dir / name)))
        return listed

    def cube(self, name: str = DEFAULT_CUBE, *, create: bool = False) -> MemCube:
        """Open a cube. Reading a cube that does not exist is an error, except the default cube."""
        check_cube_name(name)
        with self._lock:
            cube = self._cubes.get(name)
            if cube is not None:
                return cube
            folder = self.cubes_dir / name
            if self.store is not None:
                cube = self._open_shared(name, folder, create=create)
                self._cubes[name] = cube
                return cube
            self._check_spelling(name)
            if not (folder / "memory.db").is_file() and not create and name != DEFAULT_CUBE:
                # No list of the cubes there are: a caller may not be allowed to know them (issue 26).
                raise NotFound(f"no cube '{name}'; adding a memory to it creates it")
            # Private whatever the umask (issue 13): 0700 folders, a 0600 database whose
            # -wal and -shm files SQLite creates with the same mode.
            if (problem := db_file.quick_damage(folder / "memory.db")) is not None:
                raise Unavailable(f"cube '{name}' is damaged: {problem}. Nothing was changed; `memcube doctor` says more")
            filemodes.private_dir(folder)
            filemodes.private_dir(folder / "graph")
            filemodes.private_file(folder / "memory.db")
            cube = self._open(name, folder)
            self._cubes[name] = cube
            return cube

    def _open_shared(self, name: str, folder: Path, *, create: bool) -> MemCube:
        """A cube of the PostgreSQL store, with its local graph in this data folder."""
        assert self.store is not None
        if not create and name != DEFAULT_CUBE and name not in self.store.cube_names():
            raise NotFound(f"no cube '{name}'; adding a memory to it creates it")
        filemodes.private_dir(folder)
        filemodes.private_dir(folder / "graph")
        return MemCube(name, folder, self.embedder, custom_types=self.custom_types, store=self.store.open_cube(name))

    def _open(self, name: str, folder: Path) -> MemCube:
        """``MemCube(...)``, again while SQLite says the file is locked: a lock is not damage.

        Processes that open one cube at the same moment (two MCP clients starting, servers
        behind one address) contend for its locks, and some of SQLite's lock upgrades answer
        "database is locked" at once instead of waiting, to avoid a deadlock (the busy handler
        is not called there). Opening again after a short, jittered pause then succeeds; a
        file still locked after ``OPEN_RETRY_S`` is reported as busy, never as damaged.
        """
        deadline = time.monotonic() + OPEN_RETRY_S
        pause = 0.02
        while True:
            try:
                return MemCube(name, folder, self.embedder, custom_types=self.custom_types)
            except MemCubeError:
                raise
            except Exception as exc:  # SQLite refused the file: locked for now, or malformed / not a database
                if not db_file.locked(exc):
                    raise Unavailable(damage_reason(name, exc)) from exc
                if time.monotonic() >= deadline:
                    raise Unavailable(
                        f"cube '{name}' is busy: another process kept it locked for {OPEN_RETRY_S:.0f} s ({exc}); try again"
                    ) from exc
                log.info("cube %s is locked by another process (%s); opening it again", name, exc)
                time.sleep(pause * (0.5 + random.random()))
                pause = min(pause * 2, 0.5)

    def unknown(self, name: str) -> bool:
        """Whether ``cube(name)`` would answer ``NotFound``: no such cube and no other spelling of one."""
        check_cube_name(name)
        if name == DEFAULT_CUBE or name in self._cubes or (self.cubes_dir / name / "memory.db").is_file():
            return False
        if self.store is not None:
            return name not in self.store.cube_names()
        try:
            self._check_spelling(name)
        except InvalidInput:
            return False  # ``cube`` names the spelling to use instead
        return True

    def _check_spelling(self, name: str) -> None:
        """Refuse a name that differs from an existing cube's only in case.

        On a case-insensitive file system (macOS, Windows) ``Home`` and ``home`` are one
        folder, but two names to the ``[access]`` rules: a client refused ``home`` could
        read it as ``Home``. So a cube has one spelling, the one its folder was made with.
        Naming it here tells the caller nothing it may not know: the ``[access]`` rules hold
        for every case of a name, so a caller refused ``home`` is refused ``Home`` before this.
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
        if self.store is not None:
            self.store.close()


def damage_reason(name: str, exc: BaseException) -> str:
    """What a cube that could not be opened or read says about itself."""
    if isinstance(exc, MemCubeError):
        return str(exc)
    return f"cube '{name}' is damaged: it cannot be read ({type(exc).__name__}: {exc}); `memcube doctor` says more"


def check_cube_name_ok(name: str) -> bool:
    try:
        check_cube_name(name)
    except Exception:
        return False
    return True
