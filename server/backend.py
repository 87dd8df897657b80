"""The real MCP server behind the stdio front: the SDK's session over line callbacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

LineSource = Callable[[], "str | None"]
LineSink = Callable[[str], None]


class _LinesIn:
    """An async line iterator over a blocking source (read in a worker thread)."""

    def __init__(self, source: LineSource) -> None:
        self._source = source

    def __aiter__(self) -> _LinesIn:
        return self

    async def __anext__(self) -> str:
        import anyio

        line = await anyio.to_thread.run_sync(self._source, abandon_on_cancel=True)
        if line is None:
            raise StopAsyncIteration
        return line


class _LinesOut:
    def __init__(self, sink: LineSink) -> None:
        self._sink = sink

    async def write(self, text: str) -> None:
        for line in text.splitlines():
            if line:
                self._sink(line)

    async def flush(self) -> None:
        return None


async def serve_lines(mcp: Any, source: LineSource, sink: LineSink) -> None:
    """Run ``mcp`` (an MCPServer) over line callbacks, as ``run_stdio_async`` does over stdio."""
    from mcp.server.stdio import stdio_server

    async with stdio_server(stdin=_LinesIn(source), stdout=_LinesOut(sink)) as (read_stream, write_stream):  # type: ignore[arg-type]
        # What ``run_stdio_async`` does, over these lines instead of the process's stdio (the front owns
        # those). mcp 2.3 has no public handle on the low-level server: ``run_stdio_async`` claims fds 0
        # and 1, and the SDK's own ``Client`` and in-memory transport read this same attribute.
        lowlevel = mcp._lowlevel_server  # noqa: SLF001 - no public accessor in mcp 2.3 (see above)
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


def stdio_backend(home: Path | None) -> Callable[[LineSource, LineSink], None]:
    def run(source: LineSource, sink: LineSink) -> None:
        import anyio

        from .app import build_server

        mcp = build_server(home)
        try:
            anyio.run(serve_lines, mcp, source, sink)
        finally:
            mcp.memory_home.close()

    return run
