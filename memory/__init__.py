"""MemCube's memory layer: use it as a library without MCP.

    from memory import MemoryHome
    home = MemoryHome("~/.memcube-demo")
    cube = home.cube("default")
    cube.add([{"text": "Alice prefers tea over coffee", "type": "preference"}])
    cube.search({"query": "what does Alice drink?"}).hits

Names are imported on first use (PEP 562), so ``import memory.config`` stays cheap for
the CLI and the server's fast start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MemCube": "memory.cube",
    "MemoryHome": "memory.home",
    "Conflict": "memory.errors",
    "InvalidInput": "memory.errors",
    "MemCubeError": "memory.errors",
    "NotFound": "memory.errors",
    "Unavailable": "memory.errors",
    "AddOutcome": "memory.models",
    "Memory": "memory.models",
    "MemoryInput": "memory.models",
    "MemoryPatch": "memory.models",
    "SearchHit": "memory.models",
    "SearchQuery": "memory.models",
    "SearchResult": "memory.models",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from memory.cube import MemCube
    from memory.errors import Conflict, InvalidInput, MemCubeError, NotFound, Unavailable
    from memory.home import MemoryHome
    from memory.models import AddOutcome, Memory, MemoryInput, MemoryPatch, SearchHit, SearchQuery


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
