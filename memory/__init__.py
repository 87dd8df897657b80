"""MemCube's memory layer: use it as a library without MCP.

    from memory import MemoryHome
    home = MemoryHome("~/.memcube-demo")
    cube = home.cube("default")
    cube.add([{"text": "Alice prefers tea over coffee", "type": "preference"}])
    cube.search({"query": "what does Alice drink?"})
"""

from .cube import MemCube
from .errors import Conflict, InvalidInput, MemCubeError, NotFound, Unavailable
from .home import MemoryHome
from .models import AddOutcome, Memory, MemoryInput, MemoryPatch, SearchHit, SearchQuery

__all__ = [
    "AddOutcome", "Conflict", "InvalidInput", "MemCube", "MemCubeError", "Memory", "MemoryHome", "MemoryInput",
    "MemoryPatch", "NotFound", "SearchHit", "SearchQuery", "Unavailable",
]
