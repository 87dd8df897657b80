"""Files recorded from a live server: build one on a throw-away home, then write or check the file.

``server.handshake`` (the fast front's replay) and ``server.manifest`` (the MCP Bundle
manifest) both describe what a fresh install serves; the tests regenerate each and compare.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer


@contextmanager
def scratch_server() -> Iterator[MCPServer]:
    """The server as a fresh install builds it, on an empty home deleted afterwards."""
    from memory import MemoryHome

    from .app import build_server

    with tempfile.TemporaryDirectory() as scratch:
        home = MemoryHome(scratch)
        try:
            yield build_server(home, warm_up=False)
        finally:
            home.close()


def publish(text: str, path: Path, args: Sequence[str], *, module: str) -> int:
    """``--write``: replace ``path``; ``--check``: exit 1 if it differs; otherwise print ``text``."""
    if "--write" in args:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    elif "--check" in args:
        if path.read_text(encoding="utf-8") != text:
            print(f"{path} is stale: run `uv run python -m {module} --write`", file=sys.stderr)
            return 1
        print(f"{path} matches the server", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
