"""The entity graph tool."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from memory.config import DEFAULT_CUBE
from memory.models import AliasView, EntityView

from .runtime import ToolRuntime
from .strict import NoBool


def register(mcp: MCPServer, runtime: ToolRuntime) -> None:
    @mcp.tool(annotations=ToolAnnotations(title="Entity graph", read_only_hint=True, open_world_hint=False))
    async def memory_graph(
        entity: Annotated[str, Field(min_length=1, max_length=128, description="a person, place, project, @handle, #tag...")],
        cube: str = DEFAULT_CUBE,
        depth: Annotated[Literal[1, 2], NoBool, Field(description="1: direct relations; 2: also their relations")] = 1,
        to: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=128,
                description="another entity: only the relations between the two (entity='Carol', to='Bob': who Carol is to Bob)",
            ),
        ] = None,
    ) -> EntityView:
        """Follow an entity: its relations to other entities (typed, e.g. daughter_of, works_at, lives_in;
        each with the memory that says so, whether the client gave it or it was read from the text, and
        when it held: a relation a newer memory changed is closed, with valid_to and invalidated_by;
        current ones come first), the entities it appears with, and the memories that mention it.
        With `to`, only the relations between the two entities."""
        return await runtime.call(lambda: runtime.cube(cube).graph(entity, depth, to))

    @mcp.tool(
        annotations=ToolAnnotations(
            title="Entity names", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        )
    )
    async def memory_alias(
        name: Annotated[
            str, Field(min_length=1, max_length=128, description="a name as memories use it: a first name, a handle, a nickname")
        ],
        entity: Annotated[
            str | None,
            Field(
                max_length=128,
                description="the entity it stands for (e.g. the full name); leave out to see what the name resolves to",
            ),
        ] = None,
        split: Annotated[
            bool, Field(description="keep name and entity apart (undo a merge, or a first name that means someone else)")
        ] = False,
        cube: str = DEFAULT_CUBE,
    ) -> AliasView:
        """Entity names: a first name, a handle or a short form resolves to the full name when only one entity in
        the cube has it (memory_graph and search follow it). Give `entity` to merge `name` into it; with `split`
        keep them apart. Without `entity`, shows what `name` resolves to and any entities it could mean."""
        if entity is None:
            if split:
                raise ToolError("split needs the entity to keep the name apart from")
            return await runtime.call(lambda: runtime.cube(cube).alias_view(name))
        return await runtime.call(lambda: runtime.cube(cube).alias(name, entity, split=split))
