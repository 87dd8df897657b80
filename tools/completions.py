"""completion/complete for clients.

Completion offers what a person would type into a resource template or a prompt
argument: cube names, entity names, roles and tags from the cube named so far (the
default cube otherwise), filtered by the prefix typed. ``server.completion_access`` keeps
a client from completing into a cube it may not read. (``logging/setLevel`` is served by
``server.log_level``.)
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

from memory.config import DEFAULT_CUBE

from .runtime import ToolRuntime

MAX_VALUES = 100  # the protocol's limit for one completion answer
# Which vocabulary an argument draws from, by its name in a template or prompt.
ARGUMENT_KINDS = {"cube": "cube", "name": "entity", "entity": "entity", "role": "role", "tag": "tag", "topic": "topic"}


def _matching(values: list[str], prefix: str) -> Completion:
    wanted = prefix.casefold()
    found = [v for v in values if v.casefold().startswith(wanted)]
    if len(found) < MAX_VALUES and wanted:
        found += [v for v in values if wanted in v.casefold() and v not in found]
    return Completion(values=found[:MAX_VALUES], total=len(found), has_more=len(found) > MAX_VALUES)


def complete(runtime: ToolRuntime, kind: str, prefix: str, cube: str) -> Completion:
    """The values of one kind (cube, entity, role, tag, topic) that match ``prefix``; blocking."""
    if kind == "cube":
        return _matching(runtime.home.cube_names() or [DEFAULT_CUBE], prefix)
    if cube not in runtime.home.cube_names():
        return Completion(values=[], total=0, has_more=False)
    vocabulary = runtime.cube(cube).vocabulary()
    if kind == "topic":  # a topic to recall: an entity or a tag
        return _matching(vocabulary["entity"] + [t for t in vocabulary["tag"] if t not in vocabulary["entity"]], prefix)
    return _matching(vocabulary[kind], prefix)


def register(mcp: MCPServer, runtime: ToolRuntime) -> None:
    @mcp.completion()
    async def memcube_completion(
        ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument, context: CompletionContext | None
    ) -> Completion | None:
        kind = ARGUMENT_KINDS.get(argument.name)
        if kind is None:
            return None
        given = (context.arguments or {}) if context is not None else {}
        cube = given.get("cube") or DEFAULT_CUBE
        return await runtime.call(lambda: complete(runtime, kind, argument.value or "", cube))
