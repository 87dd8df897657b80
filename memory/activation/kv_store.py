"""A cube's KV caches for one model: resident in RAM, persisted under ``<cube>/kv/<model key>/``.

Files are safetensors written to a temporary name and renamed, so a reader in another process
sees a whole cache or none. Both budgets evict the least recently used cache: RAM eviction
keeps the file (the next use reads it back), disk eviction deletes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memory.activation.base import Backend, CacheMeta, CacheRefused, read_header

log = logging.getLogger(__name__)


@dataclass
class Entry:
    meta: CacheMeta
    path: Path
    nbytes: int
    last_used: float
    cache: Any | None = None  # None: on disk only


class KVStore:
    def __init__(
        self,
        folder: Path,
        backend: Backend,
        template: str,
        *,
        ram_budget: int,
        disk_budget: int,
        run: Callable[[Callable[[], Any]], Any] = lambda fn: fn(),
    ) -> None:
        self.folder = folder
        self._run = run  # the engine's model thread: MLX arrays belong to the thread that made them
        self.backend = backend
        self.template = template
        self.ram_budget = ram_budget
        self.disk_budget = disk_budget
        self._entries: dict[str, Entry] = {}
        self._lock = threading.RLock()
        self.scan()

    # -- reading ------------------------------------------------------------------------

    def scan(self) -> None:
        """Index the cache files on disk (another process may have written some)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob("*.safetensors"):
            key = path.stem
            if key.startswith("."):
                continue
            with self._lock:
                if key in self._entries:
                    continue
            try:
                meta = self.check(path)
            except (CacheRefused, ValueError, OSError) as exc:
                log.warning("ignoring cache %s: %s", path, exc)
                continue
            stat = path.stat()
            with self._lock:
                self._entries.setdefault(key, Entry(meta, path, stat.st_size, stat.st_mtime))

    def check(self, path: Path) -> CacheMeta:
        """The cache's metadata, if it was built by this model with this prompt template; else CacheRefused."""
        meta = CacheMeta.from_header(read_header(path))
        if meta.identity != self.backend.identity:
            raise CacheRefused(
                f"cache {path.name} was built by {meta.identity.name} ({meta.identity.backend}, {meta.identity.revision}, "
                f"{meta.identity.dtype}); the loaded model is {self.backend.identity.name} ({self.backend.identity.revision})"
            )
        if meta.template != self.template:
            raise CacheRefused(f"cache {path.name} uses prompt template {meta.template}, not {self.template}")
        return meta

    def load(self, path: Path) -> tuple[CacheMeta, Any]:
        meta = self.check(path)
        return meta, self._run(lambda: self.backend.load_cache(path))

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def cache_of(self, entry: Entry) -> Any:
        """The entry's cache, read from disk if it is not resident. Never hand it to a generation: copy it."""
        with self._lock:
            entry.last_used = time.time()
            if entry.cache is not None:
                return entry.cache
        _, cache = self.load(entry.path)
        with self._lock:
            entry.cache = cache
            self._evict()
        return cache

    def best_for(self, ids: Iterable[str]) -> Entry | None:
        """The cache holding the most of ``ids`` (the shortest among equals), or None if none holds any."""
        wanted = set(ids)
        best: tuple[int, int] | None = None
        chosen = None
        for entry in self.entries():
            covered = len(wanted & set(entry.meta.ids))
            if covered and (best is None or (covered, -entry.meta.tokens) > best):
                best, chosen = (covered, -entry.meta.tokens), entry
        return chosen

    def longest_prefix(self, memories: list[tuple[str, int]]) -> tuple[Entry | None, int]:
        """The cache sharing the longest leading run of ``memories``, and how many it shares."""
        chosen, best = None, 0
        for entry in self.entries():
            shared = 0
            for mine, theirs in zip(entry.meta.memories, memories, strict=False):  # the common prefix
                if tuple(mine) != tuple(theirs):
                    break
                shared += 1
            if shared > best or (shared == best and chosen is not None and shared and len(entry.meta.memories) == shared):
                chosen, best = entry, shared
        return chosen, best

    # -- writing ------------------------------------------------------------------------

    def put(self, meta: CacheMeta, cache: Any) -> Entry:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{meta.key()}.safetensors"
        # mlx insists on the .safetensors suffix; the leading dot keeps scans off a half-written file.
        partial = self.folder / f".{meta.key()}.{os.getpid()}.{threading.get_ident()}.safetensors"
        self._run(lambda: self.backend.save_cache(cache, partial, meta.to_header()))
        os.replace(partial, path)
        entry = Entry(meta, path, path.stat().st_size, time.time(), cache)
        with self._lock:
            self._entries[path.stem] = entry
            self._evict()
        return entry

    def drop(self, entries: Iterable[Entry]) -> int:
        dropped = 0
        with self._lock:
            for entry in entries:
                if self._entries.pop(entry.path.stem, None) is not None:
                    dropped += 1
                entry.cache = None
                entry.path.unlink(missing_ok=True)
        return dropped

    def drop_memories(self, ids: Iterable[str]) -> int:
        """Drop every cache holding any of ``ids`` (they changed: the caches read their old text)."""
        changed = set(ids)
        return self.drop([e for e in self.entries() if changed & set(e.meta.ids)])

    def validate(self, current: Mapping[str, int]) -> int:
        """Drop caches holding a memory whose live version is not the one they read (``current``: live ids only)."""
        stale = [e for e in self.entries() if any(current.get(i) != v for i, v in e.meta.memories)]
        return self.drop(stale)

    def _evict(self) -> None:
        entries = sorted(self._entries.values(), key=lambda e: e.last_used)
        resident = [e for e in entries if e.cache is not None]
        ram = sum(e.nbytes for e in resident)
        for entry in resident:
            if ram <= self.ram_budget:
                break
            entry.cache = None
            ram -= entry.nbytes
        disk = sum(e.nbytes for e in entries)
        for entry in entries[:-1]:  # the newest cache stays even when it alone is over budget
            if disk <= self.disk_budget:
                break
            self._entries.pop(entry.path.stem, None)
            entry.cache = None
            entry.path.unlink(missing_ok=True)
            disk -= entry.nbytes

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "caches": len(self._entries),
                "resident": sum(1 for e in self._entries.values() if e.cache is not None),
                "ram_bytes": sum(e.nbytes for e in self._entries.values() if e.cache is not None),
                "disk_bytes": sum(e.nbytes for e in self._entries.values()),
                "tokens": sum(e.meta.tokens for e in self._entries.values()),
            }
