"""Access control per client and cube, through MCP: the rules in <home>/config.toml."""

from __future__ import annotations

import json

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import Implementation
from support import add, error, ok

from memory import MemoryHome
from server.app import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


RULES = """
[access]
default = "write"

[access.clients.reader]
"*" = "read"

[access.clients.worker]
"*" = "none"
work = "write"
"""


@pytest.fixture
def acl_home(tmp_path, shared_embedder):
    (tmp_path / "config.toml").write_text(RULES)
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    yield home
    home.close()


def as_client(home: MemoryHome, name: str, mode: str) -> Client:
    return Client(build_server(home, warm_up=False), mode=mode, client_info=Implementation(name=name, version="1"))


async def test_a_read_only_client_can_search_but_not_change_a_cube(acl_home, mode):
    async with as_client(acl_home, "owner", mode) as owner:
        secret = await add(owner, "The spare key is under the blue flowerpot", cube="home")
    async with as_client(acl_home, "reader", mode) as reader:
        hits = (await ok(reader, "memory_search", query="where is the spare key", cube="home"))["hits"]
        assert hits[0]["id"] == secret
        for tool, arguments in [
            ("memory_add", {"text": "A new note", "cube": "home"}),
            ("memory_update", {"id": secret, "text": "The spare key is gone", "cube": "home"}),
            ("memory_archive", {"ids": secret, "cube": "home"}),
            ("memory_delete", {"ids": secret, "cube": "home", "purge": True}),
        ]:
            message = await error(reader, tool, **arguments)
            assert "may not write cube 'home'" in message and "config.toml" in message
    memory = acl_home.cube("home").get([secret])[0]
    assert (memory.status, memory.version, memory.text) == ("active", 1, "The spare key is under the blue flowerpot")
    assert acl_home.cube("home").stats().active == 1


async def test_a_client_cannot_read_a_cube_it_was_not_granted(acl_home, mode):
    async with as_client(acl_home, "owner", mode) as owner:
        await add(owner, "Family holiday: Crete in June", cube="home")
    async with as_client(acl_home, "worker", mode) as worker:
        assert "may not read cube 'home'" in await error(worker, "memory_search", query="holiday", cube="home")
        with pytest.raises(MCPError, match="may not read cube 'home'"):
            await worker.read_resource("memory://home/recent", cache_mode="bypass")
        with pytest.raises(MCPError, match="may not read cube 'home'"):
            await worker.get_prompt("recall", {"topic": "holiday", "cube": "home"})
        await add(worker, "Sprint review moved to Thursday", cube="work")
        listed = json.loads((await worker.read_resource("memory://cubes", cache_mode="bypass")).contents[0].text)
        assert [c["cube"] for c in listed] == ["work"]


async def test_refusals_are_recorded_in_the_cube_they_aimed_at(acl_home):
    async with as_client(acl_home, "owner", "legacy") as owner:
        await add(owner, "Family holiday: Crete in June", cube="home")
    async with as_client(acl_home, "reader", "legacy") as reader:
        await error(reader, "memory_add", text="sneaky", cube="home")
    async with as_client(acl_home, "worker", "legacy") as worker:
        await error(worker, "memory_search", query="holiday", cube="home")
    denials = acl_home.cube("home").store.denials()
    assert [(d["client"], d["action"], d["need"]) for d in denials] == [
        ("worker", "tools/call memory_search", "read"),
        ("reader", "tools/call memory_add", "write"),
    ]


async def test_without_rules_every_client_may_do_everything(tmp_path, shared_embedder):
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        async with as_client(home, "anyone", "auto") as client:
            memory_id = await add(client, "Plants need water on Sundays", cube="garden")
            await ok(client, "memory_archive", ids=memory_id, cube="garden")
    finally:
        home.close()
