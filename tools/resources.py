"""MCP resources: cubes, recent memories, single memories, entities and stats as JSON."""

from __future__ import annotations

import json

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from .runtime import ToolRuntime

JSON = "application/json"


def _json(value: object) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2)
    if isinstance(value, list):
        return json.dumps(
            [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value], indent=2, ensure_ascii=False
        )
    return json.dumps(value, indent=2, ensure_ascii=False)


def register(mcp: MCPServer, runtime: ToolRuntime) -> None:
    @mcp.resource("memory://cubes", mime_type=JSON)
    async def cubes() -> str:
        """Every cube in this MemCube home with its counts."""
        # A damaged cube is listed with what is wrong instead of its counts (issue 26).
        return _json(await runtime.read_resource(runtime.home.every_stats))

    @mcp.resource("memory://{cube}/recent", mime_type=JSON)
    async def recent(cube: str) -> str:
        """The 20 most recently added active memories of a cube."""
        return _json(await runtime.read_resource(lambda: runtime.cube(cube).recent(20)))

    @mcp.resource("memory://{cube}/items/{id}", mime_type=JSON)
    async def item(cube: str, id: str) -> str:
        """One memory with every field. Deleted memories are not readable."""

        def read():
            memory = runtime.cube(cube).get([id])[0]
            if memory.status == "deleted":
                from memory import NotFound

                raise NotFound(f"memory {id} was deleted")
            return memory

        return _json(await runtime.read_resource(read))

    @mcp.resource("memory://{cube}/entities/{name}", mime_type=JSON)
    async def entity(cube: str, name: str) -> str:
        """An entity: its relations, neighbours and the memories that mention it."""
        return _json(await runtime.read_resource(lambda: runtime.cube(cube).graph(name, 1)))

    @mcp.resource("memory://{cube}/stats", mime_type=JSON)
    async def stats(cube: str) -> str:
        """Counts for a cube: active, archived, deleted, entities, relations, embedding model."""
        return _json(await runtime.read_resource(lambda: runtime.cube(cube).stats()))
