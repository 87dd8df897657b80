"""`memcube serve` as a real subprocess over stdio, the way Claude Desktop and IDEs start it."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from support import CLIENT_INFO, CLIENT_NAME, ok, search

from memory import MemoryHome

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
MEMCUBE = Path(sys.executable).with_name("memcube")


def serve_params(home: Path) -> StdioServerParameters:
    command, args = (str(MEMCUBE), ["serve"]) if MEMCUBE.is_file() else (sys.executable, ["-m", "server", "serve"])
    # PYTHONPATH: the server runs this checkout's code, the code under test, whatever is installed.
    return StdioServerParameters(command=command, args=args, env={"MEMCUBE_HOME": str(home), "PYTHONPATH": str(ROOT)}, cwd=ROOT)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_memcube_serve_speaks_only_json_rpc_on_stdout_and_stores_what_it_is_given(tmp_path, mode, shared_embedder):
    transport_problems: list[Exception] = []

    async def on_message(message: object) -> None:
        # A line on stdout that is not JSON-RPC reaches the client as an exception.
        if isinstance(message, Exception):
            transport_problems.append(message)

    with anyio.fail_after(120):  # the server imports the SDK and loads the model: seconds on a small machine
        async with Client(serve_params(tmp_path), mode=mode, client_info=CLIENT_INFO, message_handler=on_message) as client:
            assert client.server_info is None or client.server_info.name == "memcube"
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"memory_add", "memory_search", "memory_graph"} <= tools

            added = await ok(
                client,
                "memory_add",
                text="Lena's piano lesson is on Wednesdays at five",
                relations=[{"subject": "Lena", "predicate": "takes", "object": "piano lessons"}],
            )
            memory_id = added["ids"][0]
            hits = await search(client, "when does Lena practise music")
            assert hits[0]["id"] == memory_id
            assert (await ok(client, "memory_graph", entity="Lena"))["memories"][0]["id"] == memory_id
            bad = await client.call_tool("memory_get", {"ids": "not-an-id"})
            assert bad.is_error and "not a memory id" in bad.content[0].text

    assert transport_problems == []

    # The server wrote to MEMCUBE_HOME, and recorded which client made the change.
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        [memory] = home.cube().get([memory_id])
        assert memory.text == "Lena's piano lesson is on Wednesdays at five"
        assert memory.client == CLIENT_NAME
        assert home.cube().stats().graph_pending == 0  # graph work was finished before the server exited
    finally:
        home.close()


@pytest.mark.slow  # two real servers (20 s loaded); quick: one server above, two homes on one folder in test_library
async def test_two_servers_on_one_home_both_serve_every_tool(tmp_path):
    """Each MCP client starts its own `memcube serve`; on one data directory they must all work at once."""
    with anyio.fail_after(180):
        async with (
            Client(serve_params(tmp_path), mode="legacy", client_info=CLIENT_INFO) as desktop,
            Client(serve_params(tmp_path), client_info=CLIENT_INFO) as editor,
        ):
            from_desktop = (
                await ok(
                    desktop,
                    "memory_add",
                    text="Mira leads the Falcon project",
                    relations=[{"subject": "Mira", "predicate": "leads", "object": "Falcon"}],
                )
            )["ids"][0]
            from_editor = (
                await ok(
                    editor,
                    "memory_add",
                    text="Falcon ships in October",
                    relations=[{"subject": "Falcon", "predicate": "ships_in", "object": "October"}],
                )
            )["ids"][0]

            # Each sees the other's writes at once.
            assert (await search(desktop, "when does Falcon ship"))[0]["id"] == from_editor
            assert (await search(editor, "who leads Falcon"))[0]["id"] == from_desktop

            # And both can follow the graph, whichever of them applied the changes to it.
            graphs = [await client.call_tool("memory_graph", {"entity": "Falcon"}) for client in (desktop, editor)]

    # (checked outside the sessions, so that a failure reads plainly rather than inside task-group errors)
    for result in graphs:
        assert not result.is_error, result.content[0].text
        assert {m["id"] for m in result.structured_content["memories"]} == {from_desktop, from_editor}
