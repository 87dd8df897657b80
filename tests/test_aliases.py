"""Entity aliases (issue 15): a first name resolves to the full name when only one person has it.

Graph and search follow aliases; two people who share a first name stay apart; the client
merges a name the shape rule cannot know (a nickname) and splits a wrong resolution.
"""

from __future__ import annotations

import pytest
from support import ok

from memory import NotFound, SearchQuery
from memory.retrieval.aliases import AliasChoices, build

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


@pytest.fixture
def cube(home):
    return home.cube(create=True)


def test_the_alias_rule():
    table = build({"marco bianchi", "marco", "priya raman", "alex kim", "alex stone", "alex", "@priya_r", "#launch"})
    assert table.canonical("marco") == "marco bianchi"
    assert table.canonical("priya") == "priya raman"  # a query word no memory names alone
    assert table.canonical("@priya_r") == "priya raman"
    assert table.canonical("bianchi") == "marco bianchi"
    assert table.canonical("alex") == "alex" and table.ambiguous["alex"] == ["alex kim", "alex stone"]
    assert table.group("marco") == ["marco bianchi", "marco"]
    merged = build({"robert smith", "bob"}, AliasChoices(merged={"bob": "robert smith"}))
    assert merged.canonical("bob") == "robert smith"
    split = build({"marco bianchi", "marco"}, AliasChoices(split=[("marco", "marco bianchi")]))
    assert split.canonical("marco") == "marco"


def test_a_first_name_reaches_the_full_names_memories_in_graph_and_search(cube):
    full = cube.add([{"text": "Marco Bianchi leads the backend team", "type": "fact"}])[0].id
    short = cube.add([{"text": "Lunch with Marco at the new ramen place", "type": "event"}])[0].id
    view = cube.graph("Marco")
    assert view.entity == "Marco Bianchi" and view.aliases == ["Marco"]
    assert {m.id for m in view.memories} == {full, short}
    assert {m.id for m in cube.graph("Marco Bianchi").memories} == {full, short}
    hits = cube.search(SearchQuery(query="Marco", signals=("entity",))).hits
    assert {h.id for h in hits} == {full, short}


def test_two_people_with_one_first_name_stay_apart(cube):
    kim = cube.add([{"text": "Alex Kim runs the Tuesday book club", "type": "fact"}])[0].id
    stone = cube.add([{"text": "Alex Stone fixed my bike", "type": "event"}])[0].id
    said = cube.add([{"text": "Coffee with Alex after work", "type": "event"}])[0].id
    assert {m.id for m in cube.graph("Alex").memories} == {said}
    assert {m.id for m in cube.graph("Alex Kim").memories} == {kim}
    assert {m.id for m in cube.graph("Alex Stone").memories} == {stone}
    assert cube.alias_view("Alex").ambiguous == ["alex kim", "alex stone"]


def test_merge_and_split(cube):
    robert = cube.add([{"text": "Robert Smith is my landlord", "type": "fact"}])[0].id
    bob = cube.add([{"text": "Paid the rent to Bob", "type": "event"}])[0].id
    with pytest.raises(NotFound):
        cube.alias("Robert Smith", "Bobby")  # merging into a name no memory uses
    view = cube.alias("Bob", "Robert Smith")
    assert view.entity == "robert smith" and "bob" in view.names
    assert {m.id for m in cube.graph("Bob").memories} == {robert, bob}
    assert {h.id for h in cube.search(SearchQuery(query="Bob", signals=("entity",))).hits} == {robert, bob}
    cube.alias("Bob", "Robert Smith", split=True)
    assert {m.id for m in cube.graph("Bob").memories} == {bob}
    # A split also undoes the shape rule: Marco is someone else here.
    cube.add([{"text": "Marco Bianchi leads the backend team", "type": "fact"}, {"text": "Dinner with Marco", "type": "event"}])
    assert cube.graph("Marco").entity == "Marco Bianchi"
    cube.alias("Marco", "Marco Bianchi", split=True)
    assert cube.graph("Marco").entity == "Marco" and cube.graph("Marco").aliases == []


async def test_memory_alias_through_mcp(client):
    await ok(client, "memory_add", text="Priya Raman designs the onboarding screens", type="fact")
    await ok(client, "memory_add", text="Met Priya for the icon review", type="event")
    shown = await ok(client, "memory_alias", name="Priya")
    assert shown["entity"] == "priya raman"
    graph = await ok(client, "memory_graph", entity="Priya")
    assert graph["entity"] == "Priya Raman" and len(graph["memories"]) == 2
    await ok(client, "memory_add", text="Lunch with Pri on Friday", type="event", entities=["Pri"])
    merged = await ok(client, "memory_alias", name="Pri", entity="Priya Raman")
    assert "pri" in merged["names"]
    assert len((await ok(client, "memory_graph", entity="Pri"))["memories"]) == 3
