"""The memory tools, as an assistant uses them over MCP (modern and 2025-handshake sessions).

Every test runs twice: once with a modern ('auto') client and once with the legacy
initialize handshake that Claude Desktop speaks.
"""

from __future__ import annotations

import re

import anyio
import pytest
from support import CLIENT_NAME, add, error, get, ok, read_json, search, search_ids

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):
    """Every tool test here runs on both engines: a data folder, and the PostgreSQL store (postgres tier)."""
    return engine_home


MEMORY_ID = re.compile(r"^mem_[0-9a-hjkmnp-tv-z]{26}$")


# -- memory_add --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2025 handshake in the quick tier too
async def test_an_added_memory_reads_back_with_every_field_it_was_given(client, shared_embedder):
    added = await ok(
        client,
        "memory_add",
        text="Alice prefers green tea over coffee",
        type="Preference",
        tags=["drinks", "alice"],
        entities=["Alice"],
        occurred_at="2023-05-08T15:56:00+02:00",
        metadata={"source_chat": 42, "mood": "calm"},
        importance=0.9,
    )
    assert added["results"] == [{"id": added["ids"][0], "created": True, "superseded": [], "restated": None}]
    memory_id = added["ids"][0]
    assert MEMORY_ID.match(memory_id)

    memory = await get(client, memory_id)
    assert memory["text"] == "Alice prefers green tea over coffee"
    assert memory["type"] == "preference"  # types are normalised to lower case
    assert memory["tags"] == ["drinks", "alice"]
    assert "Alice" in memory["entities"]
    assert memory["occurred_at"] == "2023-05-08T13:56:00Z"  # stored in UTC
    assert memory["metadata"] == {"source_chat": 42, "mood": "calm"}
    assert memory["importance"] == 0.9
    assert memory["status"] == "active"
    assert memory["version"] == 1
    assert memory["cube"] == "default"
    assert memory["client"] == CLIENT_NAME
    assert memory["embedding_model"] == shared_embedder.model_id


async def test_a_batch_add_returns_one_id_per_memory_in_the_order_given(client):
    texts = ["Bob plays the cello", "Carol runs marathons", "Dan collects stamps"]
    added = await ok(client, "memory_add", memories=[{"text": t, "type": "fact", "tags": ["hobby"]} for t in texts])
    assert len(added["ids"]) == 3 and len(set(added["ids"])) == 3
    assert all(r["created"] for r in added["results"])
    memories = (await ok(client, "memory_get", ids=added["ids"]))["memories"]
    assert [m["text"] for m in memories] == texts
    assert {m["type"] for m in memories} == {"fact"}
    assert (await read_json(client, "memory://default/stats"))["active"] == 3


async def test_adding_the_same_text_again_returns_the_existing_id_without_a_second_memory(client):
    first = await ok(client, "memory_add", text="The wifi password is on the fridge")
    again = await ok(client, "memory_add", text="  The wifi password is on the fridge  ")
    assert again["ids"] == first["ids"]
    assert again["results"] == [{"id": first["ids"][0], "created": False, "superseded": [], "restated": None}]
    assert (await read_json(client, "memory://default/stats"))["active"] == 1


async def test_a_batch_holding_the_same_text_twice_stores_it_once(client):
    added = await ok(client, "memory_add", memories=[{"text": "Eve owns a red kayak"}, {"text": "Eve owns a red kayak"}])
    assert added["ids"][0] == added["ids"][1]
    assert [r["created"] for r in added["results"]] == [True, False]
    assert (await read_json(client, "memory://default/stats"))["active"] == 1


async def test_memories_in_another_cube_stay_in_that_cube(client):
    work_id = await add(client, "The quarterly report is due on Friday", cube="work")
    assert await search_ids(client, "quarterly report due", cube="work") == [work_id]
    assert await search_ids(client, "quarterly report due") == []
    message = await error(client, "memory_get", ids=work_id)  # the default cube does not hold it
    assert work_id in message
    cubes = {c["cube"]: c["active"] for c in await read_json(client, "memory://cubes")}
    assert cubes["work"] == 1
    assert cubes.get("default", 0) == 0


# -- memory_search -----------------------------------------------------------------------


@pytest.fixture
async def kitchen(client):
    """A few memories with distinct meanings, words and entities."""
    ids = {}
    for key, text, extra in [
        ("tea", "Alice prefers green tea over coffee", {"type": "preference", "entities": ["Alice"]}),
        ("bike", "Bob repaired the rear wheel of his bicycle", {"type": "event", "entities": ["Bob"]}),
        ("plant", "The monstera plant needs water every Tuesday", {"type": "task", "tags": ["home"]}),
        ("flight", "Carol's flight to Lisbon leaves at 7am", {"type": "event", "entities": ["Carol", "Lisbon"]}),
    ]:
        ids[key] = await add(client, text, **extra)
    return ids


async def test_search_finds_a_memory_by_meaning_without_shared_words(client, kitchen):
    hits = await search(client, "which hot drink does she like")
    assert hits[0]["id"] == kitchen["tea"]
    assert "vector" in hits[0]["signals"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2025 handshake in the quick tier too
async def test_search_finds_a_memory_by_a_distinctive_word(client, kitchen):
    hits = await search(client, "monstera")
    assert hits[0]["id"] == kitchen["plant"]
    assert "keyword" in hits[0]["signals"]
    keyword_hits = [h["id"] for h in hits if "keyword" in h["signals"]]
    assert keyword_hits == [kitchen["plant"]]


async def test_search_links_memories_to_entities_named_in_the_query(client, kitchen):
    hits = await search(client, "what do I know about carol")
    assert hits[0]["id"] == kitchen["flight"]
    assert "entity" in hits[0]["signals"]
    assert [h["id"] for h in hits if "entity" in h["signals"]] == [kitchen["flight"]]


async def test_search_returns_at_most_limit_hits_ordered_by_fused_score(client, kitchen):
    hits = await search(client, "things people do", limit=2, include_weak=True)  # a vague query: every hit is weak
    assert len(hits) == 2
    assert hits[0]["score"] >= hits[1]["score"]


async def test_search_filters_by_type_and_tag(client, kitchen):
    assert set(await search_ids(client, "anything at all", types=["event"])) == {kitchen["bike"], kitchen["flight"]}
    assert set(await search_ids(client, "anything at all", types=["Preference"])) == {kitchen["tea"]}
    assert await search_ids(client, "anything at all", tags=["home"]) == [kitchen["plant"]]
    assert await search_ids(client, "anything at all", types=["event"], tags=["home"]) == []


async def test_search_filters_by_when_a_memory_occurred(client):
    january = await add(client, "Trip to the mountains with Dana", occurred_at="2023-01-10")
    june = await add(client, "Trip to the seaside with Dana", occurred_at="2023-06-15T09:00:00Z")
    february = await add(client, "Trip to the desert with Dana", occurred_at="2024-02-01")
    await add(client, "Dana likes trips in general")  # no occurred_at: never inside a time window

    assert set(await search_ids(client, "trip", since="2023-06-01")) == {june, february}
    assert set(await search_ids(client, "trip", until="2023-12-31")) == {january, june}
    assert await search_ids(client, "trip", since="2023-06-01", until="2023-12-31") == [june]
    assert await search_ids(client, "trip", since="2025-01-01") == []


async def test_a_date_as_the_end_of_a_window_includes_that_whole_day(client):
    """'What happened on May 8?' is since=until=2023-05-08: an evening event that day is inside the window."""
    dinner = await add(client, "Dinner with Sam at the harbour", occurred_at="2023-05-08T19:00:00Z")
    await add(client, "Breakfast with Sam the next morning", occurred_at="2023-05-09T08:00:00Z")
    assert await search_ids(client, "meal with Sam", since="2023-05-08", until="2023-05-08") == [dinner]
    assert await search_ids(client, "meal with Sam", until="2023-05-08") == [dinner]


async def test_search_finds_updated_text_by_its_new_words_and_never_by_its_old_ones(client):
    memory_id = await add(client, "The spare house key is hidden under the blue flowerpot")
    await add(client, "Groceries: oat milk, lemons and rye bread")
    await ok(client, "memory_update", id=memory_id, text="The spare house key is hidden inside the garage toolbox")

    new_hits = await search(client, "toolbox")
    assert new_hits[0]["id"] == memory_id
    assert "keyword" in new_hits[0]["signals"]
    assert new_hits[0]["text"] == "The spare house key is hidden inside the garage toolbox"

    old_hits = await search(client, "flowerpot")
    assert [h["id"] for h in old_hits if "keyword" in h["signals"]] == []
    assert all("flowerpot" not in h["text"] for h in old_hits)


# -- memory_update and memory_history ----------------------------------------------------


async def test_update_changes_only_the_fields_given_and_bumps_the_version(client):
    memory_id = await add(client, "Frank drives a green van", tags=["cars"], type="fact")
    updated = await ok(client, "memory_update", id=memory_id, tags=["cars", "frank"])
    assert updated["version"] == 2
    assert updated["tags"] == ["cars", "frank"]
    assert updated["text"] == "Frank drives a green van"
    assert updated["type"] == "fact"
    assert await get(client, memory_id) | {"access_count": 0, "last_access": None} == updated | {
        "access_count": 0,
        "last_access": None,
    }


async def test_history_lists_every_version_with_old_and_new_values_and_the_client(client):
    memory_id = await add(client, "Greta's birthday is on March 3")
    await ok(client, "memory_update", id=memory_id, text="Greta's birthday is on March 4")
    await ok(client, "memory_update", id=memory_id, tags=["birthdays"])
    await ok(client, "memory_archive", ids=memory_id)
    await ok(client, "memory_restore", ids=[memory_id])
    await ok(client, "memory_delete", ids=memory_id)

    history = await ok(client, "memory_history", id=memory_id)
    assert history["id"] == memory_id
    versions = history["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3, 4, 5, 6]
    assert [v["op"] for v in versions] == ["add", "update", "update", "archive", "restore", "delete"]
    assert {v["client"] for v in versions} == {CLIENT_NAME}
    assert versions[0]["changes"]["text"] == {"old": None, "new": "Greta's birthday is on March 3"}
    assert versions[1]["changes"]["text"] == {"old": "Greta's birthday is on March 3", "new": "Greta's birthday is on March 4"}
    assert versions[2]["changes"] == {"tags": {"old": [], "new": ["birthdays"]}}
    assert versions[3]["changes"] == {"status": {"old": "active", "new": "archived"}}
    assert versions[4]["changes"] == {"status": {"old": "archived", "new": "active"}}
    assert versions[5]["changes"] == {"status": {"old": "active", "new": "deleted"}}


async def test_an_update_that_changes_nothing_records_no_version(client):
    memory_id = await add(client, "Hugo speaks Finnish", tags=["languages"])
    unchanged = await ok(client, "memory_update", id=memory_id, tags=["languages"])
    assert unchanged["version"] == 1
    assert len((await ok(client, "memory_history", id=memory_id))["versions"]) == 1


async def test_updating_text_re_embeds_it_so_search_by_meaning_follows(client):
    memory_id = await add(client, "Ivan is allergic to peanuts")
    await add(client, "The office printer is on the third floor")
    await ok(client, "memory_update", id=memory_id, text="Ivan is learning to play the violin")
    hits = await search(client, "musical instrument lessons")
    assert hits[0]["id"] == memory_id
    assert "vector" in hits[0]["signals"]


# -- archive, restore, delete ------------------------------------------------------------


async def test_archived_memories_leave_default_search_and_the_graph_and_come_back_on_request(client):
    archived = await add(client, "Jules used to live in Zanzibar", entities=["Jules", "Zanzibar"])
    kept = await add(client, "Jules now lives in Oslo", entities=["Jules", "Oslo"])
    result = await ok(client, "memory_archive", ids=[archived])
    assert result["memories"][0]["status"] == "archived"

    assert archived not in await search_ids(client, "Jules Zanzibar")
    assert archived in await search_ids(client, "Jules Zanzibar", include_archived=True)
    hits = await search(client, "Jules Zanzibar", include_archived=True)
    assert next(h for h in hits if h["id"] == archived)["status"] == "archived"

    jules = await ok(client, "memory_graph", entity="Jules")
    assert [m["id"] for m in jules["memories"]] == [kept]
    assert "Zanzibar" not in jules["neighbours"]
    assert "no entity" in await error(client, "memory_graph", entity="Zanzibar")

    stats = await read_json(client, "memory://default/stats")
    assert (stats["active"], stats["archived"]) == (1, 1)

    restored = await ok(client, "memory_restore", ids=archived)
    assert restored["memories"][0]["status"] == "active"
    assert archived in await search_ids(client, "Jules Zanzibar")
    assert archived in [m["id"] for m in (await ok(client, "memory_graph", entity="Zanzibar"))["memories"]]


async def test_a_deleted_memory_leaves_search_and_the_graph_but_keeps_a_tombstone(client):
    gone = await add(client, "Kim's locker code is 4417", entities=["Kim", "Gym"])
    other = await add(client, "Kim goes to the gym on Mondays", entities=["Kim"])
    result = await ok(client, "memory_delete", ids=gone)
    assert result == {"ids": [gone], "purged": False}

    assert gone not in await search_ids(client, "Kim locker code 4417")
    assert gone not in await search_ids(client, "Kim locker code 4417", include_archived=True)
    kim = await ok(client, "memory_graph", entity="Kim")
    assert [m["id"] for m in kim["memories"]] == [other]

    tombstone = await get(client, gone)
    assert tombstone["status"] == "deleted"
    assert tombstone["text"] == "Kim's locker code is 4417"
    assert (await ok(client, "memory_history", id=gone))["versions"][-1]["op"] == "delete"
    stats = await read_json(client, "memory://default/stats")
    assert (stats["active"], stats["deleted"]) == (1, 1)

    # The text is free again: adding it makes a new memory rather than reviving the tombstone.
    again = await ok(client, "memory_add", text="Kim's locker code is 4417")
    assert again["results"][0]["created"] is True
    assert again["ids"][0] != gone


async def test_a_purged_memory_is_erased_with_only_a_contentless_trace_left(client):
    secret = await add(client, "Leo's bank PIN is 9931", entities=["Leo"])
    await add(client, "Leo likes jazz", entities=["Leo"])
    result = await ok(client, "memory_delete", ids=[secret], purge=True)
    assert result == {"ids": [secret], "purged": True}

    assert secret in await error(client, "memory_get", ids=secret)
    assert secret not in await search_ids(client, "Leo bank PIN 9931", include_archived=True)
    history = await ok(client, "memory_history", id=secret)
    assert history["versions"][-1]["op"] == "purge"
    # The id itself stays (it is the trace); an id's random letters can spell "9931", so look
    # for the secret in everything but the id.
    trace = str(history).replace(secret, "<id>")
    assert "9931" not in trace and "PIN" not in trace and "bank" not in trace, trace
    leo = await ok(client, "memory_graph", entity="Leo")
    assert secret not in [m["id"] for m in leo["memories"]]
    stats = await read_json(client, "memory://default/stats")
    assert (stats["active"], stats["archived"], stats["deleted"]) == (1, 0, 0)


async def test_a_tombstone_can_still_be_purged(client):
    memory_id = await add(client, "Mia's old phone number is 555-0199")
    await ok(client, "memory_delete", ids=memory_id)
    await ok(client, "memory_delete", ids=memory_id, purge=True)
    assert memory_id in await error(client, "memory_get", ids=memory_id)
    assert (await read_json(client, "memory://default/stats"))["deleted"] == 0


# -- memory_graph ------------------------------------------------------------------------


@pytest.fixture
async def company(client):
    """Alice works at Acme; Acme is based in Berlin; Berlin is in Germany."""
    alice = await add(
        client, "Alice works at Acme as an engineer", relations=[{"subject": "Alice", "predicate": "works_at", "object": "Acme"}]
    )
    acme = await add(
        client, "Acme is headquartered in Berlin", relations=[{"subject": "Acme", "predicate": "based_in", "object": "Berlin"}]
    )
    berlin = await add(
        client,
        "Berlin is the capital of Germany",
        relations=[{"subject": "Berlin", "predicate": "capital_of", "object": "Germany"}],
    )
    return {"alice": alice, "acme": acme, "berlin": berlin}


async def test_graph_depth_1_shows_direct_relations_and_the_memories_mentioning_the_entity(client, company):
    view = await ok(client, "memory_graph", entity="alice")  # any case finds the entity
    assert view["entity"] == "Alice"
    assert view["depth"] == 1
    assert [(r["subject"], r["predicate"], r["object"], r["source_memory"]) for r in view["relations"]] == [
        ("Alice", "works_at", "Acme", company["alice"])
    ]
    assert view["neighbours"] == ["Acme"]
    assert [m["id"] for m in view["memories"]] == [company["alice"]]


async def test_graph_depth_2_also_follows_the_neighbours_relations(client, company):
    view = await ok(client, "memory_graph", entity="Alice", depth=2)
    triples = {(r["subject"], r["predicate"], r["object"]) for r in view["relations"]}
    assert triples == {("Alice", "works_at", "Acme"), ("Acme", "based_in", "Berlin")}
    assert set(view["neighbours"]) == {"Acme", "Berlin"}
    assert "Germany" not in view["neighbours"]  # three hops away


async def test_the_graph_follows_an_update_of_a_memorys_relations(client, company):
    await ok(
        client,
        "memory_update",
        id=company["alice"],
        text="Alice works at Globex as an engineer",
        relations=[{"subject": "Alice", "predicate": "works_at", "object": "Globex"}],
    )
    view = await ok(client, "memory_graph", entity="Alice")
    assert [(r["predicate"], r["object"]) for r in view["relations"]] == [("works_at", "Globex")]
    assert view["neighbours"] == ["Globex"]
    acme = await ok(client, "memory_graph", entity="Acme")
    assert company["alice"] not in [m["id"] for m in acme["memories"]]
    assert "Alice" not in acme["neighbours"]


async def test_entities_found_in_the_text_follow_the_text_when_it_is_corrected(client):
    memory_id = await add(client, "Last year Nadia moved to Berlin")
    assert {"Nadia", "Berlin"} <= set((await get(client, memory_id))["entities"])
    await ok(client, "memory_update", id=memory_id, text="Last year Nadia moved to Madrid")
    entities = (await get(client, memory_id))["entities"]
    assert "Madrid" in entities and "Berlin" not in entities
    assert "no entity" in await error(client, "memory_graph", entity="Berlin")
    assert [m["id"] for m in (await ok(client, "memory_graph", entity="Madrid"))["memories"]] == [memory_id]


async def test_an_entity_leaves_the_graph_with_the_last_memory_that_named_it(client, company):
    await ok(client, "memory_delete", ids=company["berlin"])
    germany_error = await error(client, "memory_graph", entity="Germany")
    assert "no entity" in germany_error
    berlin = await ok(client, "memory_graph", entity="Berlin")  # still named by the Acme memory
    assert [m["id"] for m in berlin["memories"]] == [company["acme"]]
    assert [r["predicate"] for r in berlin["relations"]] == ["based_in"]


async def test_the_server_keeps_serving_after_entities_pass_from_a_purged_memory_to_a_new_one(client):
    """Graph work runs in the background, in batches; whatever a batch meets, the server must go on answering."""
    names = ["Ada", "Babbage", "Engine"]
    await add(client, "An unrelated note", entities=["Other"])
    old = await add(client, "Ada wrote notes on the Engine", entities=names)
    await ok(client, "memory_graph", entity="Ada")  # the graph holds the old memory
    added: list[str] = []

    async def purge_old() -> None:
        await ok(client, "memory_delete", ids=old, purge=True)

    async def add_new() -> None:
        added.append(await add(client, "Babbage designed the Engine for Ada", entities=names))

    async with anyio.create_task_group() as tasks:  # both changes land in one background batch
        tasks.start_soon(purge_old)
        tasks.start_soon(add_new)
    await anyio.sleep(0.3)  # time for the background graph sync to run

    found = await search_ids(client, "who designed the Engine")
    assert found[0] == added[0] and old not in found
    view = await ok(client, "memory_graph", entity="Engine")
    assert [m["id"] for m in view["memories"]] == added


# -- many calls at once ------------------------------------------------------------------


async def test_concurrent_calls_from_one_client_all_succeed_and_nothing_is_lost(client):
    failures: list[str] = []

    async def worker(i: int) -> None:
        for tool, arguments in [
            ("memory_add", {"text": f"Person{i} met the Hub team about topic {i}", "entities": ["Hub", f"Person{i}"]}),
            ("memory_search", {"query": f"topic {i}"}),
            ("memory_graph", {"entity": "Hub"}),
        ]:
            result = await client.call_tool(tool, arguments)
            if result.is_error:
                failures.append(f"{tool}: {result.content[0].text}")

    async with anyio.create_task_group() as tasks:
        for i in range(12):
            tasks.start_soon(worker, i)
    assert failures == []
    hub = await ok(client, "memory_graph", entity="Hub")
    assert len(hub["memories"]) == 12
    stats = await read_json(client, "memory://default/stats")
    assert (stats["active"], stats["graph_pending"]) == (12, 0)


async def test_adding_the_text_of_an_archived_memory_makes_it_current_again(client):
    """Saying it again means it holds again: the archived memory comes back, as a new version, not a copy."""
    memory_id = await add(client, "The gym opens at 6:00 on weekdays")
    await ok(client, "memory_archive", ids=memory_id)
    again = await ok(client, "memory_add", text="The gym opens at 6:00 on weekdays")
    assert again["ids"] == [memory_id] and again["results"][0]["created"] is False
    memory = await get(client, memory_id)
    assert memory["status"] == "active" and memory["version"] == 3
    assert [v["op"] for v in (await ok(client, "memory_history", id=memory_id))["versions"]] == ["add", "archive", "restore"]
    assert memory_id in await search_ids(client, "when does the gym open")
