"""What a client can browse and discover: resources, prompts, and honest tool descriptions."""

from __future__ import annotations

import pytest
from mcp import MCPError
from support import add, ok, read_json, without

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


# The foundation's tools; later features may add more, each held to the same rules.
TOOLS = {
    "memory_add",
    "memory_search",
    "memory_get",
    "memory_update",
    "memory_delete",
    "memory_archive",
    "memory_restore",
    "memory_history",
    "memory_graph",
}
READ_ONLY = {"memory_search", "memory_get", "memory_history", "memory_graph"}


# -- resources ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2025 handshake in the quick tier too
async def test_the_resource_list_offers_the_cubes_and_templates_for_everything_else(client):
    resources = {str(r.uri) for r in (await client.list_resources()).resources}
    assert "memory://cubes" in resources
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert templates >= {
        "memory://{cube}/recent",
        "memory://{cube}/items/{id}",
        "memory://{cube}/entities/{name}",
        "memory://{cube}/stats",
    }


async def test_cubes_lists_every_cube_with_its_counts(client):
    await add(client, "Rosa grows tomatoes")
    archived = await add(client, "Rosa once grew peppers")
    await ok(client, "memory_archive", ids=archived)
    await add(client, "Sprint planning is on Mondays", cube="work")
    cubes = {c["cube"]: c for c in await read_json(client, "memory://cubes")}
    assert set(cubes) == {"default", "work"}
    assert (cubes["default"]["active"], cubes["default"]["archived"]) == (1, 1)
    assert cubes["work"]["active"] == 1


async def test_recent_lists_the_newest_twenty_active_memories_newest_first(client):
    added = await ok(client, "memory_add", memories=[{"text": f"Numbered note {i}"} for i in range(22)])
    ids = added["ids"]
    await ok(client, "memory_archive", ids=ids[21])
    await ok(client, "memory_delete", ids=ids[20])
    recent = await read_json(client, "memory://default/recent")
    assert [m["id"] for m in recent] == list(reversed(ids[:20]))
    assert {m["status"] for m in recent} == {"active"}


async def test_an_item_is_the_full_memory_and_a_deleted_one_is_not_readable(client):
    memory_id = await add(client, "Sam's flat is on the fourth floor", tags=["home"], entities=["Sam"])
    item = await read_json(client, f"memory://default/items/{memory_id}")
    fetched = (await ok(client, "memory_get", ids=memory_id))["memories"][0]
    assert without(item, "access_count", "last_access") == without(fetched, "access_count", "last_access")

    await ok(client, "memory_archive", ids=memory_id)
    assert (await read_json(client, f"memory://default/items/{memory_id}"))["status"] == "archived"

    await ok(client, "memory_delete", ids=memory_id)
    with pytest.raises(MCPError, match="deleted"):
        await client.read_resource(f"memory://default/items/{memory_id}", cache_mode="bypass")


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("memory://default/items/mem_00000000000000000000000000", "no memory"),
        ("memory://default/items/not-an-id", "not a memory id"),
        ("memory://nowhere/stats", "no cube 'nowhere'"),
        ("memory://default/entities/Nobody", "no entity"),
    ],
)
async def test_reading_something_that_is_not_there_is_an_error_that_says_so(client, uri, problem):
    await add(client, "Tara likes crosswords")
    with pytest.raises(MCPError, match=problem):
        await client.read_resource(uri, cache_mode="bypass")


async def test_an_entity_resource_matches_the_graph_tool(client):
    memory_id = await add(
        client,
        "Uma moved to New York for a job at Acme Corp",
        relations=[{"subject": "Uma", "predicate": "works_at", "object": "Acme Corp"}],
    )
    resource = await read_json(client, "memory://default/entities/Acme%20Corp")  # a name with a space, URL-encoded
    tool = await ok(client, "memory_graph", entity="Acme Corp")
    assert resource == tool
    assert resource["entity"] == "Acme Corp"
    assert [m["id"] for m in resource["memories"]] == [memory_id]
    assert [(r["subject"], r["predicate"]) for r in resource["relations"]] == [("Uma", "works_at")]


async def test_stats_count_memories_by_status_and_name_the_embedding_model(client, shared_embedder):
    ids = [await add(client, text) for text in ("Vic swims", "Vic runs", "Vic cycles", "Vic rows")]
    await ok(client, "memory_archive", ids=ids[0])
    await ok(client, "memory_delete", ids=ids[1])
    await ok(client, "memory_delete", ids=ids[2], purge=True)
    stats = await read_json(client, "memory://default/stats")
    assert (stats["active"], stats["archived"], stats["deleted"]) == (1, 1, 1)
    assert stats["cube"] == "default"
    assert stats["embedding_model"] == shared_embedder.model_id
    assert stats["schema_version"] >= 1


# -- prompts -----------------------------------------------------------------------------


async def test_recall_puts_the_relevant_memories_with_their_ids_into_the_conversation(client):
    tea = await add(client, "Wendy drinks oolong tea every afternoon", occurred_at="2024-03-01")
    await add(client, "The car needs new tyres before winter")
    prompt = await client.get_prompt("recall", {"topic": "Wendy's tea habits", "limit": "1"})
    text = prompt.messages[0].content.text
    assert f"[{tea}] (2024-03-01) Wendy drinks oolong tea every afternoon" in text
    assert "tyres" not in text  # limit 1: only the best match


async def test_recall_says_so_when_nothing_is_remembered(client):
    prompt = await client.get_prompt("recall", {"topic": "quantum gardening"})
    assert "No memories about 'quantum gardening'" in prompt.messages[0].content.text


async def test_remember_guides_the_assistant_to_save_with_memory_add(client):
    plain = (await client.get_prompt("remember", {})).messages[0].content.text
    assert "memory_add" in plain and "{subject, predicate, object}" in plain
    focused = (await client.get_prompt("remember", {"focus": "travel plans"})).messages[0].content.text
    assert focused.endswith("Pay most attention to: travel plans")


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2025 handshake in the quick tier too
async def test_every_prompt_has_a_description_and_declares_its_arguments(client):
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(prompts) >= {"recall", "remember"}
    for prompt in prompts.values():
        assert prompt.description and len(prompt.description) > 20, prompt.name
    recall_args = {a.name: a for a in prompts["recall"].arguments}
    assert recall_args["topic"].required is True
    assert recall_args["cube"].required is not True


# -- tool discovery ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2025 handshake in the quick tier too
async def test_every_tool_has_a_description_and_an_input_schema(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) >= TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 30, tool.name
        assert tool.input_schema["type"] == "object"
        if tool.name in TOOLS:
            assert "cube" in tool.input_schema["properties"], tool.name
    assert {"text", "memories"} <= set(tools["memory_add"].input_schema["properties"])
    assert tools["memory_search"].input_schema["required"] == ["query"]


async def test_tool_annotations_are_honest(client):
    tools = {t.name: t.annotations for t in (await client.list_tools()).tools}
    for name in READ_ONLY:
        assert tools[name].read_only_hint is True, name
    for name in TOOLS - READ_ONLY:
        assert tools[name].read_only_hint is False, name
    assert tools["memory_delete"].destructive_hint is True
    assert tools["memory_update"].destructive_hint is True  # it overwrites the current text
    assert tools["memory_add"].destructive_hint is False
    assert tools["memory_archive"].destructive_hint is False  # restore undoes it
    assert tools["memory_delete"].idempotent_hint is False
    assert all(a is not None for a in tools.values()), "every tool says whether it reads or writes"
    assert all(a.open_world_hint is False for a in tools.values())  # nothing leaves the machine
