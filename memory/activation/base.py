"""The backend interface, a model's identity, and the metadata every stored cache carries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from memory.errors import InvalidInput, MemCubeError

CACHE_FORMAT = "memcube-kv/1"


class ModelIdentity(BaseModel):
    """What a cache is only valid for: the same weights, read the same way."""

    model_config = ConfigDict(frozen=True)
    backend: str
    name: str
    revision: str  # a hub commit, or a fingerprint of the weights files
    dtype: str

    def key(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class CacheMeta(BaseModel):
    """Stored in the safetensors header of every cache file (string metadata, JSON-encoded)."""

    format: str = CACHE_FORMAT
    identity: ModelIdentity
    template: str
    memories: list[tuple[str, int]]  # (id, version), in prompt order
    ends: list[int]  # token count after each memory: where a copy can be cut back to a shorter prefix
    tokens: int

    @property
    def ids(self) -> list[str]:
        return [m[0] for m in self.memories]

    def key(self) -> str:
        raw = json.dumps([self.identity.key(), self.template, self.memories])
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def to_header(self) -> dict[str, str]:
        return {"memcube": self.model_dump_json()}

    @classmethod
    def from_header(cls, header: dict[str, str]) -> CacheMeta:
        raw = header.get("memcube")
        if raw is None:
            raise CacheRefused("not a MemCube cache: its header has no 'memcube' metadata")
        return cls.model_validate_json(raw)


class CacheRefused(MemCubeError):
    """A stored cache that must not be used: another model, another format, a damaged file."""


class NoLocalModel(InvalidInput):
    """memory_ask needs a local model and none is configured or found."""


class Backend(Protocol):
    """One loaded model. Methods block; the engine calls them from its model thread only."""

    identity: ModelIdentity
    eos_ids: set[int]

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def chat_template(self) -> str | None:
        """The prompt rendered for a system and a user message that are placeholders (None: no template)."""
        ...

    def new_cache(self) -> Any: ...
    def copy_cache(self, cache: Any, tokens: int | None = None) -> Any:
        """An independent cache (its first ``tokens`` only, if given) that a prefill or a generation can
        extend without touching ``cache``."""
        ...

    def cache_tokens(self, cache: Any) -> int: ...
    def cache_bytes(self, cache: Any) -> int: ...
    def prefill(self, cache: Any, tokens: list[int]) -> tuple[np.ndarray, Any]:
        """The logits after ``tokens`` (float32, [vocab]) and the cache extended by them.

        The extended cache may be ``cache`` itself, changed in place (MLX): pass a copy to keep one.
        """
        ...

    def generate(self, cache: Any, tokens: list[int], max_tokens: int, temperature: float) -> Iterator[int]:
        """Token ids continuing ``cache`` + ``tokens``; extends ``cache`` (pass a copy to keep one)."""
        ...

    def save_cache(self, cache: Any, path: Path, header: dict[str, str]) -> None: ...
    def load_cache(self, path: Path) -> Any: ...


def read_header(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file, without reading its tensors."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if not 0 < size < 100_000_000:
            raise CacheRefused(f"{path.name} is not a safetensors file")
        header = json.loads(f.read(size))
    meta = header.get("__metadata__") or {}
    # mlx-lm's save_prompt_cache nests the caller's metadata under "0." (it flattens a list).
    return {k.removeprefix("0."): v for k, v in meta.items()}


def weights_fingerprint(folder: Path, patterns: tuple[str, ...]) -> str:
    """A cheap, content-based identity for weights that carry no hub revision.

    Hashing whole multi-GB files at every load would cost seconds; sizes plus the head, the
    tail and evenly spread blocks of each file tell different weights apart (random or trained).
    """
    digest = hashlib.sha256()
    files = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder)}:{size}".encode())
        with path.open("rb") as f:
            block = 1 << 16
            for i in range(17):
                f.seek(min(max(size - block, 0), i * size // 16))
                digest.update(f.read(block))
    return "sha256:" + digest.hexdigest()[:32]


def model_revision(folder: Path, patterns: tuple[str, ...]) -> str:
    fingerprint = weights_fingerprint(folder, patterns)
    marker = folder / ".memcube-revision"  # written by `memcube model pull`: the hub commit
    return f"{marker.read_text().strip()}/{fingerprint}" if marker.is_file() else fingerprint
