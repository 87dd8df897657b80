"""Clients hear about changes: resources/subscribe (2025 clients) and subscriptions/listen (2026)."""

from __future__ import annotations

import warnings

import anyio
import pytest
from mcp import Client

from memory import MemoryHome
from server.app import build_server


@pytest.mark.anyio
async def test_a_legacy_subscriber_hears_that_recent_changed(tmp_path, shared_embedder):
    received: list[object] = []

    async def on_message(message: object) -> None:
        received.append(message)

    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    async with Client(server, mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.resources is not None
        assert client.server_capabilities.resources.subscribe is True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resources/subscribe is deprecated for 2026 clients only
            await client.subscribe_resource("memory://default/recent")
        result = await client.call_tool("memory_add", {"text": "Zoe kayaks on Sundays"})
        assert not result.is_error
        with anyio.fail_after(5):
            while not received:
                await anyio.sleep(0.02)
    uris = [str(getattr(m, "params", m).uri) for m in received if type(m).__name__ == "ResourceUpdatedNotification"]
    assert uris == ["memory://default/recent"]


@pytest.mark.anyio
async def test_a_2026_listener_hears_about_the_item_it_watches(tmp_path, shared_embedder):
    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    async with Client(server) as client:
        added = await client.call_tool("memory_add", {"text": "Zoe kayaks on Sundays"})
        memory_id = added.structured_content["ids"][0]
        uri = f"memory://default/items/{memory_id}"
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            updated = await client.call_tool("memory_update", {"id": memory_id, "text": "Zoe kayaks on Saturdays"})
            assert not updated.is_error
            with anyio.fail_after(5):
                event = await subscription.__anext__()
        assert uri in str(event)


@pytest.mark.anyio
async def test_an_unsubscribed_legacy_client_hears_nothing_more(tmp_path, shared_embedder):
    received: list[object] = []

    async def on_message(message: object) -> None:
        received.append(message)

    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    async with Client(server, mode="legacy", message_handler=on_message) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource("memory://default/recent")
            await client.unsubscribe_resource("memory://default/recent")
        result = await client.call_tool("memory_add", {"text": "Zoe kayaks on Sundays"})
        assert not result.is_error
        await anyio.sleep(0.3)
    assert not [m for m in received if type(m).__name__ == "ResourceUpdatedNotification"]


@pytest.mark.anyio
async def test_resources_subscribe_is_a_2025_method_only(tmp_path, shared_embedder):
    """A 2026 session asks subscriptions/listen; the old method is not served to it."""
    from mcp.shared.exceptions import MCPError

    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    async with Client(server) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(MCPError):
                await client.subscribe_resource("memory://default/recent")
