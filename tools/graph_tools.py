"""The entity graph tool."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from memory.config import DEFAULT_CUBE
from memory.models import EntityView

from .runtime import ToolRuntime
from .strict import NoBool


def register(mcp: MCPServer, runtime: ToolRuntime) -> None:
    @mcp.tool(annotations=ToolAnnotations(title="Entity graph", read_only_hint=True, open_world_hint=False))
    async def memory_graph(
        entity: Annotated[str, Field(min_length=1, max_length=128, description="a person, place, project, @handle, #tag...")],
        cube: str = DEFAULT_CUBE,
        depth: Annotated[Literal[1, 2], NoBool, Field(description="1: direct relations; 2: also their relations")] = 1,
    ) -> EntityView:
        """Follow an entity: its relations to other entities (with the memory each came from), the
        entities it appears with, and the memories that mention it."""
        return await runtime.call(lambda: runtime.cube(cube).graph(entity, depth))
