"""Bad input gets an MCP error that says what to change, and changes nothing.

Each case calls a tool with something wrong, checks the call failed with a message naming
the problem, and compares the cube before and after: counts, every seeded memory (with
its version), every version history and the list of cubes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from support import CLIENT_INFO, add, error, get, ok, read_json, search, without

from memory import MemoryHome
from server.app import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


UNKNOWN = "mem_" + "0" * 26  # well-formed, but no such memory


@dataclass
class Seeded:
    active: str
    other: str
    archived: str
    deleted: str

    @property
    def all(self) -> list[str]:
        return [self.active, self.other, self.archived, self.deleted]


def seed(home: MemoryHome) -> Seeded:
    """A cube holding an active, an archived and a deleted memory, plus one more active one."""
    cube = home.cube()
    active, other, archived, deleted = (
        o.id
        for o in cube.add(
            [
                {"text": "Nora keeps her passport in the desk drawer", "entities": ["Nora"], "tags": ["travel"]},
                {"text": "Omar's favourite colour is teal", "entities": ["Omar"]},
                {"text": "Nora used to work at the bakery", "entities": ["Nora"]},
                {"text": "Omar once lived in Quito", "entities": ["Omar"]},
            ]
        )
    )
    cube.archive([archived])
    cube.delete([deleted])
    cube.sync_graph()
    return Seeded(active, other, archived, deleted)


@dataclass
class Session:
    client: Client
    seeded: Seeded
    root: Path


@pytest.fixture(scope="module", params=["auto", pytest.param("legacy", marks=pytest.mark.slow)])
def shared_home(request, tmp_path_factory, shared_embedder):
    """One seeded home per protocol mode for the whole module.

    Sharing it is safe, and stricter than a fresh home per case: every case checks that
    the cube is exactly as it found it, so a case that changed anything fails itself.
    """
    root = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    home = MemoryHome(root, embedder=shared_embedder)
    seeded = seed(home)
    yield home, seeded, root, request.param
    home.close()


@pytest.fixture
async def session(shared_home) -> Session:
    """A fresh MCP session on the shared seeded home: one failing case cannot take others down."""
    home, seeded, root, mode = shared_home
    async with Client(build_server(home, warm_up=False), mode=mode, client_info=CLIENT_INFO) as client:
        yield Session(client, seeded, root)


@pytest.fixture
def seeded(home) -> Seeded:
    """The same seed in this test's own fresh home."""
    return seed(home)


async def snapshot(client, seeded: Seeded) -> dict[str, Any]:
    """What must not change: counts, memories (reads are counted, so access fields are left out), history, cubes."""
    stats = without(await read_json(client, "memory://default/stats"), "graph_pending")
    memories = (await ok(client, "memory_get", ids=seeded.all))["memories"]
    histories = [(await ok(client, "memory_history", id=i))["versions"] for i in seeded.all]
    cubes = sorted(c["cube"] for c in await read_json(client, "memory://cubes"))
    return {
        "stats": stats,
        "memories": [without(m, "access_count", "last_access") for m in memories],
        "histories": histories,
        "cubes": cubes,
    }


# Each case: (tool, arguments, words the error must contain). "{active}" and friends are
# replaced with the seeded memories' ids.
BAD_CALLS: dict[str, tuple[str, dict[str, Any], str]] = {
    # unknown ids
    "get an unknown id": ("memory_get", {"ids": UNKNOWN}, "no memory"),
    "update an unknown id": ("memory_update", {"id": UNKNOWN, "text": "anything"}, "no memory"),
    "archive a known and an unknown id": ("memory_archive", {"ids": ["{active}", UNKNOWN]}, "no memory"),
    "restore an unknown id": ("memory_restore", {"ids": UNKNOWN}, "no memory"),
    "delete a known and an unknown id": ("memory_delete", {"ids": ["{active}", UNKNOWN]}, "no memory"),
    "purge a known and an unknown id": ("memory_delete", {"ids": ["{active}", UNKNOWN], "purge": True}, "no memory"),
    "history of an unknown id": ("memory_history", {"id": UNKNOWN}, "no memory"),
    # malformed ids
    "get a number as id": ("memory_get", {"ids": "42"}, "not a memory id"),
    "get no ids": ("memory_get", {"ids": []}, "at least one memory id"),
    "get too many ids": ("memory_get", {"ids": [UNKNOWN] * 501}, "at most 500"),
    "delete SQL as id": ("memory_delete", {"ids": "'; DROP TABLE memories; --"}, "not a memory id"),
    "archive an upper-case id": ("memory_archive", {"ids": ["{active}", "MEM_" + "0" * 26]}, "not a memory id"),
    "update a truncated id": ("memory_update", {"id": "mem_01", "text": "anything"}, "not a memory id"),
    "history of an empty id": ("memory_history", {"id": ""}, "not a memory id"),
    # text
    "add empty text": ("memory_add", {"text": ""}, "text"),
    "add whitespace-only text": ("memory_add", {"text": "  \n\t  "}, "text"),
    "add oversized text": ("memory_add", {"text": "x" * 32_001}, "at most 32000 characters"),
    "add a number as text": ("memory_add", {"text": 5}, "text"),
    "update to empty text": ("memory_update", {"id": "{active}", "text": "   "}, "text"),
    "update to oversized text": ("memory_update", {"id": "{active}", "text": "y" * 32_001}, "at most 32000 characters"),
    # other fields
    "tags as a string": ("memory_add", {"text": "fine text", "tags": "notalist"}, "tags"),
    "too many tags": ("memory_add", {"text": "fine text", "tags": [f"t{i}" for i in range(33)]}, "at most 32"),
    "a tag too long": ("memory_add", {"text": "fine text", "tags": ["t" * 65]}, "tags"),
    "a type that is a sentence": ("memory_add", {"text": "fine text", "type": "Not A Type!"}, "type must be"),
    "metadata too large": ("memory_add", {"text": "fine text", "metadata": {"blob": "z" * 20_000}}, "metadata is larger than"),
    "importance above 1": ("memory_add", {"text": "fine text", "importance": 2}, "importance"),
    "occurred_at in words": ("memory_add", {"text": "fine text", "occurred_at": "last tuesday"}, "ISO 8601"),
    "occurred_at impossible date": ("memory_add", {"text": "fine text", "occurred_at": "2023-02-30"}, "ISO 8601"),
    "update occurred_at in words": ("memory_update", {"id": "{active}", "occurred_at": "soon"}, "ISO 8601"),
    "a relation without an object": (
        "memory_add",
        {"text": "fine text", "relations": [{"subject": "A", "predicate": "p"}]},
        "object",
    ),
    "both text and memories": (
        "memory_add",
        {"text": "fine text", "memories": [{"text": "other text"}]},
        "either text or memories",
    ),
    "neither text nor memories": ("memory_add", {}, "give text"),
    "an empty batch": ("memory_add", {"memories": []}, "at least one item"),
    "a batch over 500": ("memory_add", {"memories": [{"text": f"memory {i}"} for i in range(501)]}, "at most 500"),
    "a batch with one empty text": ("memory_add", {"memories": [{"text": "good one"}, {"text": ""}]}, "text"),
    "a batch with one bad date": (
        "memory_add",
        {"memories": [{"text": "good one"}, {"text": "bad one", "occurred_at": "never"}]},
        "ISO 8601",
    ),
    "a batch item with an unknown field": ("memory_add", {"memories": [{"text": "good one", "colour": "red"}]}, "colour"),
    # search
    "search with an empty query": ("memory_search", {"query": "   "}, "query"),
    "search with a query too long": ("memory_search", {"query": "q" * 2_001}, "query"),
    "limit in words": ("memory_search", {"query": "passport", "limit": "ten"}, "limit"),
    "limit zero": ("memory_search", {"query": "passport", "limit": 0}, "limit"),
    "limit 1000": ("memory_search", {"query": "passport", "limit": 1000}, "limit"),
    "since in words": ("memory_search", {"query": "passport", "since": "yesterday"}, "ISO 8601"),
    "until in words": ("memory_search", {"query": "passport", "until": "later"}, "ISO 8601"),
    "search an unknown cube": ("memory_search", {"query": "passport", "cube": "nowhere"}, "no cube 'nowhere'"),
    # state conflicts
    "restore an active memory": ("memory_restore", {"ids": "{active}"}, "only archived memories can be restored"),
    "archive an archived memory": ("memory_archive", {"ids": "{archived}"}, "only active memories can be archived"),
    "archive a deleted memory": ("memory_archive", {"ids": "{deleted}"}, "only active memories"),
    "delete a deleted memory": ("memory_delete", {"ids": "{deleted}"}, "only active or archived"),
    "restore a deleted memory": ("memory_restore", {"ids": ["{archived}", "{deleted}"]}, "only archived"),
    "update a deleted memory": ("memory_update", {"id": "{deleted}", "text": "brought back"}, "was deleted"),
    "update with nothing to change": ("memory_update", {"id": "{active}"}, "nothing to update"),
    "update to another memory's text": (
        "memory_update",
        {"id": "{active}", "text": "Omar's favourite colour is teal"},
        "already holds exactly this text",
    ),
    # graph
    "graph depth 3": ("memory_graph", {"entity": "Nora", "depth": 3}, "depth"),
    "graph of punctuation": ("memory_graph", {"entity": "?!"}, "give an entity name"),
    "graph of an empty name": ("memory_graph", {"entity": ""}, "entity"),
    "graph of an unknown entity": ("memory_graph", {"entity": "Zebulon"}, "no entity 'Zebulon'"),
}


def _fill(value: Any, seeded: Seeded) -> Any:
    if isinstance(value, str):
        placeholders = {"{active}": seeded.active, "{archived}": seeded.archived, "{deleted}": seeded.deleted}
        return placeholders.get(value, value)
    if isinstance(value, list):
        return [_fill(v, seeded) for v in value]
    return value


@pytest.mark.parametrize("case", list(BAD_CALLS))
async def test_bad_input_is_refused_with_a_helpful_message_and_changes_nothing(session, case):
    client, seeded = session.client, session.seeded
    tool, arguments, expected = BAD_CALLS[case]
    arguments = {k: _fill(v, seeded) for k, v in arguments.items()}
    before = await snapshot(client, seeded)
    message = await error(client, tool, **arguments)
    assert expected.lower() in message.lower(), message
    assert len(message) < 2_000, "the error should name the problem, not echo the input"
    assert await snapshot(client, seeded) == before


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 100, "con nul", ".hidden", "-dash", "tab\tname", "ünïcode"])
@pytest.mark.parametrize("tool", ["memory_add", "memory_search", "memory_get"])
async def test_a_bad_cube_name_is_refused_and_creates_nothing(session, tool, name):
    client, seeded, root = session.client, session.seeded, session.root
    arguments = {
        "memory_add": {"text": "escape attempt"},
        "memory_search": {"query": "passport"},
        "memory_get": {"ids": seeded.active},
    }[tool]
    before = await snapshot(client, seeded)
    message = await error(client, tool, cube=name, **arguments)
    assert "cube name" in message and "letters, digits" in message
    assert await snapshot(client, seeded) == before
    assert sorted(p.name for p in (root / "cubes").iterdir()) == ["default"]
    assert not (root / "x").exists() and not (root.parent / "x").exists()


async def test_a_rejected_add_does_not_create_the_cube_it_named(client, seeded, tmp_path):
    """Adding to a new cube creates it, but only when the add succeeds."""
    before = await snapshot(client, seeded)
    await error(client, "memory_add", text="   ", cube="brand-new")
    await error(client, "memory_add", text="fine text", occurred_at="never", cube="brand-new")
    assert await snapshot(client, seeded) == before
    assert not (tmp_path / "cubes" / "brand-new").exists()


async def test_a_tombstone_cannot_be_restored_even_after_its_text_was_added_again(client):
    """Only archived memories come back; a deleted one stays deleted and the new copy stays live."""
    first = await add(client, "Pia waters the garden at dawn")
    await ok(client, "memory_delete", ids=first)
    second = await add(client, "Pia waters the garden at dawn")
    assert second != first
    message = await error(client, "memory_restore", ids=first)
    assert "only archived" in message
    assert (await get(client, second))["status"] == "active"


# -- hostile strings --------------------------------------------------------------------

HOSTILE = {
    "sql": "'); DROP TABLE memories; --",
    "cypher": "}) MATCH (n) DETACH DELETE n //",
    "fts": 'NEAR(" AND OR *',
    "fts column filter": "text: {tags entities} : ^start",
    "quotes and backslashes": 'O\'Brien said "hi" \\ and left \\\\',
    "unicode controls": "right-to-left \u202e override, zero\u200bwidth, emoji 🧠, combining e\u0301",
    "nul byte": "before\x00after",
}


@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_hostile_strings_are_stored_verbatim_and_harm_nothing(session, kind):
    client, seeded = session.client, session.seeded
    hostile = HOSTILE[kind]
    author = f"Mallory {kind.title()}"  # one entity per case: the cases share a cube
    before = await snapshot(client, seeded)
    memory_id = await add(
        client,
        hostile,
        tags=[hostile[:64]],
        metadata={hostile: hostile},
        entities=[author],
        relations=[{"subject": author, "predicate": "wrote", "object": "Payload"}],
    )

    memory = await get(client, memory_id)
    assert memory["text"] == hostile
    assert memory["tags"] == [hostile[:64].strip()]
    assert memory["metadata"] == {hostile: hostile}

    # Searching for it is an ordinary search, and it finds it.
    hits = await search(client, hostile)
    assert memory_id in [h["id"] for h in hits]
    assert next(h for h in hits if h["id"] == memory_id)["text"] == hostile

    mallory = await ok(client, "memory_graph", entity=author)
    assert [m["id"] for m in mallory["memories"]] == [memory_id]

    # Everything that was there before is still there, unchanged.
    after = await snapshot(client, seeded)
    assert after["memories"] == before["memories"]
    assert after["histories"] == before["histories"]
    assert after["stats"]["active"] == before["stats"]["active"] + 1
    assert after["stats"]["archived"] == before["stats"]["archived"]
    assert after["stats"]["deleted"] == before["stats"]["deleted"]
    assert seeded.active in [h["id"] for h in await search(client, "where is Nora's passport")]
    assert [m["id"] for m in (await ok(client, "memory_graph", entity="Nora"))["memories"]] == [seeded.active]


async def test_entity_names_with_quotes_and_query_syntax_are_graph_keys_like_any_other(client):
    names = ["O'Brien", 'Dwayne "The Rock" Johnson', "}) MATCH (n) DETACH DELETE n //", "$name", "a`b"]
    memory_id = await add(client, "A memory about oddly named people", entities=names)
    other = await add(client, "Quentin bakes sourdough", entities=["Quentin"])
    for name in names:
        view = await ok(client, "memory_graph", entity=name)
        assert [m["id"] for m in view["memories"]] == [memory_id], name
    assert [m["id"] for m in (await ok(client, "memory_graph", entity="Quentin"))["memories"]] == [other]
    assert set(names) <= set((await get(client, memory_id))["entities"])


JSON_LOOKING_TEXTS = {
    "an object": '{"id": "mem_00000000000000000000000000", "status": "deleted"}',
    "an array": '["buy oat milk", "call the plumber"]',
    "the word null": "null",
}


@pytest.mark.parametrize("kind", list(JSON_LOOKING_TEXTS))
async def test_text_that_happens_to_be_json_is_stored_as_that_text(session, kind):
    """A memory's text is a string, whatever it looks like: a JSON snippet is worth remembering too."""
    client = session.client
    text = JSON_LOOKING_TEXTS[kind]
    placeholder = await add(client, f"placeholder for {kind}")
    updated = await client.call_tool("memory_update", {"id": placeholder, "text": text})
    update_ok = not updated.is_error and updated.structured_content["text"] == text
    await ok(client, "memory_delete", ids=placeholder, purge=True)

    added = await client.call_tool("memory_add", {"text": text})
    add_ok = not added.is_error and (await get(client, added.structured_content["ids"][0]))["text"] == text
    assert (add_ok, update_ok) == (True, True), (added.content[0].text, updated.content[0].text)
