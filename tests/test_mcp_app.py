"""The MCP App (``io.modelcontextprotocol/ui``), through real MCP client sessions in both protocol modes.

A client that negotiates the extension sees ``_meta.ui.resourceUri`` on memory_search,
memory_profile and memory_graph and can read the three ``ui://`` resources
(``text/html;profile=mcp-app``, self-contained, CSP in ``_meta.ui``); a client that does not
sees the tool and resource lists exactly as before and cannot read them.
"""

from __future__ import annotations

import re

import pytest
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.shared.exceptions import MCPError

from tools.mcp_app import TOOL_APPS, VIEWS

APPS = [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]


def _dump(items):
    return [i.model_dump(mode="json", by_alias=True, exclude_none=True) for i in items]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2025 handshake in the quick tier too
async def test_a_client_that_negotiates_the_extension_sees_the_apps(home, connect):
    async with connect(home, extensions=APPS) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for tool, uri in TOOL_APPS.items():
            assert tools[tool].meta == {**(tools[tool].meta or {}), "ui": {"resourceUri": uri}}
        assert all("ui" not in (t.meta or {}) for name, t in tools.items() if name not in TOOL_APPS)
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        for view, (uri, _, _) in VIEWS.items():
            assert listed[uri].mime_type == APP_MIME_TYPE
            contents = (await client.read_resource(uri)).contents[0]
            assert contents.mime_type == APP_MIME_TYPE
            assert contents.meta["ui"]["csp"] == {"connectDomains": [], "resourceDomains": []}
            html = contents.text
            assert f'data-view="{view}"' in html and "ui/initialize" in html and "tools/call" in html
            # Self-contained: no script, style, image or frame from anywhere else.
            assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2025 handshake in the quick tier too
async def test_a_client_without_the_extension_sees_todays_lists(home, connect, mode):
    from mcp import Client
    from support import CLIENT_INFO

    from server.app import build_server

    async with connect(home) as plain:
        tools = (await plain.list_tools()).tools
        resources = (await plain.list_resources()).resources
        assert all("ui" not in (t.meta or {}) for t in tools)
        assert not any(str(r.uri).startswith("ui://") for r in resources)
        with pytest.raises(MCPError, match="ui://memcube/search"):
            await plain.read_resource("ui://memcube/search")
    # The same lists as a server without the app at all: nothing else moved.
    bare = build_server(home, warm_up=False)
    bare._lowlevel_server.middleware[:] = [m for m in bare._lowlevel_server.middleware if type(m).__name__ != "AppsOffer"]
    async with Client(bare, mode=mode, client_info=CLIENT_INFO) as reference:
        assert _dump(tools) == _dump((await reference.list_tools()).tools)
        assert _dump(resources) == _dump((await reference.list_resources()).resources)


@pytest.mark.anyio
async def test_the_app_asks_through_tools_that_the_access_rules_guard(tmp_path, shared_embedder, connect):
    from memory import MemoryHome

    (tmp_path / "config.toml").write_text('[access]\ndefault = "none"\n')
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        async with connect(home, extensions=APPS) as client:
            # The app itself (HTML, no data) is readable; the data behind it is not.
            assert (await client.read_resource("ui://memcube/graph")).contents[0].text
            result = await client.call_tool("memory_search", {"query": "anything"})
            assert result.is_error and "may not read" in result.content[0].text
    finally:
        home.close()


def test_over_stdio_a_client_negotiating_the_app_gets_the_real_servers_listing(tmp_path):
    """``memcube serve`` replays recorded listings while the SDK loads; those are made for clients
    without the extension, so a client that negotiates it is answered by the real server."""
    from support import close_pipes
    from test_fast_start import _receive, _send, _start

    proc = _start(tmp_path)
    try:
        _send(
            proc,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "clientInfo": {"name": "t", "version": "1"},
                    "capabilities": {"extensions": {EXTENSION_ID: {"mimeTypes": [APP_MIME_TYPE]}}},
                },
            },
        )
        assert _receive(proc)["id"] == 1
        _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        tools = {t["name"]: t for t in _receive(proc)["result"]["tools"]}
        assert tools["memory_profile"]["_meta"]["ui"]["resourceUri"] == "ui://memcube/profile"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
        close_pipes(proc)
