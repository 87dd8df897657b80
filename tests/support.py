"""Small helpers for talking to the MemCube MCP server the way an assistant does."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from mcp import Client
from mcp.types import Implementation

CLIENT_INFO = Implementation(name="memcube-tests", version="1.0")
CLIENT_NAME = "memcube-tests/1.0"  # how the server records CLIENT_INFO with each change
# The store engines a behaviour test runs on: the embedded one in the quick tier, PostgreSQL in the postgres tier.
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured result."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text if result.content else ""
    assert not result.is_error, f"{tool}({arguments!r}) failed: {text}"
    assert result.structured_content is not None
    return result.structured_content


async def error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; return the error message the assistant would read."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool}({arguments!r}) should have failed but returned {result.structured_content!r}"
    return result.content[0].text


async def add(client: Client, text: str, **fields: Any) -> str:
    """Add one memory; return its id."""
    result = await ok(client, "memory_add", text=text, **fields)
    return result["ids"][0]


async def get(client: Client, memory_id: str, cube: str = "default") -> dict[str, Any]:
    return (await ok(client, "memory_get", ids=memory_id, cube=cube))["memories"][0]


async def search(client: Client, query: str, **options: Any) -> list[dict[str, Any]]:
    return (await ok(client, "memory_search", query=query, **options))["hits"]


async def search_ids(client: Client, query: str, **options: Any) -> list[str]:
    return [hit["id"] for hit in await search(client, query, **options)]


async def read_json(client: Client, uri: str) -> Any:
    """Read a resource fresh from the server (no client-side cache) and parse its JSON."""
    result = await client.read_resource(uri, cache_mode="bypass")
    return json.loads(result.contents[0].text)


def without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


@contextmanager
def raw_db(cube: Any) -> Iterator[sqlite3.Connection]:
    """A connection of the test's own to a cube's memory.db (sqlite-vec loaded), to inspect or damage it.

    The product reaches its tables only through ``CubeStore``; a test that checks what is on
    disk, or breaks it on purpose, opens the file as another process would.
    """
    from memory.store.connection import connect

    conn = connect(cube.folder / "memory.db")
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def close_pipes(proc: subprocess.Popen) -> None:
    """Close a finished process's pipes: one left open is a ResourceWarning, and warnings are errors here."""
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):  # stdin's last flush into a killed process
                pipe.close()
