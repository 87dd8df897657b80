"""completion/complete and logging/setLevel for clients.

Completion offers what a person would type into a resource template or a prompt
argument: cube names, entity names, roles and tags from the cube named so far (the
default cube otherwise), filtered by the prefix typed. ``server.completion_access`` keeps
a client from completing into a cube it may not read.

``logging/setLevel`` (a 2025-era method the 2026 revision removed, so legacy clients still
send it): the level is recorded and becomes the level of MemCube's own log, which goes to
stderr, never to the MCP channel. MCPServer has no public hook for a removed spec method;
the SDK's documented route is the low-level ``Server.add_request_handler`` (as
``server.app`` does for ``resources/subscribe``).
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
)

from memory.config import DEFAULT_CUBE

from .runtime import ToolRuntime

MAX_VALUES = 100  # the protocol's limit for one completion answer
# Which vocabulary an argument draws from, by its name in a template or prompt.
ARGUMENT_KINDS = {"cube": "cube", "name": "entity", "entity": "entity", "role": "role", "tag": "tag", "topic": "topic"}
# MCP logging levels -> Python logging levels.
LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO, "warning": logging.WARNING,
    "error": logging.ERROR, "critical": logging.CRITICAL, "alert": logging.CRITICAL, "emergency": logging.CRITICAL,
}
LOGGERS = ("memory", "tools", "server")


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

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        level = LEVELS.get(str(params.level), logging.WARNING)
        for name in LOGGERS:
            logging.getLogger(name).setLevel(level)
        return EmptyResult()

    mcp._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)  # noqa: SLF001 - see the module docstring
