"""The MCP server: wires the memory home to the tool families, resources and prompts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from pydantic import ValidationError

from memory import MemoryHome, language
from memory.activation.scheduler import Scheduler
from tools import ask_tools, completions, graph_tools, memory_tools, profile_tools, prompts, resources
from tools.mcp_app import AppsOffer, MemoryAppsExtension
from tools.refusals import describe_refusal
from tools.runtime import ToolRuntime

from .access import AccessControl
from .arguments import UnknownArguments
from .completion_access import CompletionAccess
from .log_level import LogLevel
from .subscriptions import LegacySubscriptions

log = logging.getLogger(__name__)

INSTRUCTIONS = """MemCube is the user's long-term memory, kept on this computer.
Search it (memory_search) before answering questions about the user, their people, projects and
past conversations; save what will matter later (memory_add) as self-contained statements with
entities; correct stale memories (memory_update) instead of adding contradicting ones; archive what
no longer applies. Cite memory ids when you rely on them."""


class MemCubeServer(MCPServer[ToolRuntime]):
    """The MCP server, with the memory home it serves and its scheduler (for the CLI, tests, benchmarks)."""

    def __init__(self, memory_home: MemoryHome, scheduler: Scheduler, **options: Any) -> None:
        super().__init__(**options)
        self.memory_home = memory_home
        self.scheduler = scheduler

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        """The SDK's call, with arguments its check refused told in plain words (issue 30), not pydantic's text."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            schema = next((tool.input_schema for tool in await self.list_tools() if tool.name == name), None)
            raise ToolError(f"{name}: {describe_refusal(cause, arguments, schema)}") from cause


def build_server(home: MemoryHome | Path | str | None = None, *, warm_up: bool = True) -> MemCubeServer:
    """An MCP server over ``home`` (a MemoryHome, a path, or None for $MEMCUBE_HOME)."""
    memory_home = home if isinstance(home, MemoryHome) else MemoryHome(home)
    scheduler = Scheduler(memory_home)  # the local model loads on first use, never here
    runtime = ToolRuntime(memory_home, events=scheduler.notify)
    runtime.bus = InMemorySubscriptionBus()  # the server's own; kept so notices can come from no request

    @asynccontextmanager
    async def lifespan(_: MCPServer[ToolRuntime]) -> AsyncIterator[ToolRuntime]:
        async with anyio.create_task_group() as tasks:
            if warm_up:
                # Load the embedding model while the client is still listing tools, so the
                # first search does not pay for it; initialize never waits for it.
                tasks.start_soon(_warm_up, memory_home)
            tasks.start_soon(runtime.run_graph_sync)
            tasks.start_soon(runtime.run_store_changes)
            tasks.start_soon(scheduler.run)
            try:
                yield runtime
            finally:
                tasks.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await runtime.flush()

    mcp = MemCubeServer(
        memory_home,
        scheduler,
        name="memcube",
        title="MemCube",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        log_level="WARNING",
        # Access control first: a refused call never reaches what comes after it.
        middleware=[
            AccessControl(memory_home),
            LegacySubscriptions(runtime.subscribers),
            CompletionAccess(memory_home),
            LogLevel(),
            AppsOffer(),
        ],
        extensions=[MemoryAppsExtension()],
        subscriptions=runtime.bus,
    )
    mcp.middleware.append(UnknownArguments(mcp))  # needs the server itself, to read the tools' published arguments
    memory_tools.register(mcp, runtime)
    graph_tools.register(mcp, runtime)
    profile_tools.register(mcp, runtime)
    ask_tools.register(mcp, runtime, scheduler)
    resources.register(mcp, runtime)
    prompts.register(mcp, runtime)
    completions.register(mcp, runtime)
    return mcp


async def _warm_up(home: MemoryHome) -> None:
    try:
        await anyio.to_thread.run_sync(home.embedder.load)
    except Exception:  # a broken model must surface on the call that needs it, with its message
        log.exception("embedding model failed to load")
    try:
        # Then the English pipeline that reads entities on every add (seconds to import spaCy).
        await anyio.to_thread.run_sync(language.warm)
    except Exception:
        log.exception("language pipeline failed to load")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memcube-mcp")
    except PackageNotFoundError:
        return "0+unknown"
