"""The graph outbox applied in batches (memory.graph.derive + GraphStore._resync): the same graph
as a full rebuild and as written out by hand, whatever the batch size; names bound as parameters."""

from __future__ import annotations

import pytest

from memory.graph.derive import derive
from memory.store.cube_store import GraphRow


def _fill(cube) -> dict[str, str]:
    """Entities, relations, a supersession chain, an archive, deletes; two rounds of graph work."""

    def add(text: str, **fields) -> str:
        [outcome] = cube.add([{"text": text, **fields}])
        assert outcome.created, text
        return outcome.id

    ids = {
        "m1": add(
            "the first note about the two of them",
            entities=["Ada", "Babbage"],
            relations=[{"subject": "Ada", "predicate": "works_with", "object": "Babbage", "valid_from": "2020-01-01"}],
        ),
        "m2": add(
            "a second note about the pair",
            entities=["Ada", "Carol"],
            relations=[{"subject": "Carol", "predicate": "knows", "object": "Ada", "valid_to": "2024-05-01"}],
        ),
        "m3": add("a third note, to be deleted", entities=["Dora"]),
        "m4": add("a fourth note, to be archived", entities=["Eve"]),
        "p1": add("a first drink preference", type="preference", subject="drink", entities=["Tea"]),
    }
    return ids


def _second_round(cube, ids: dict[str, str]) -> None:
    cube.delete([ids["m1"]])  # Ada stays (m2 names her), Babbage and the relation go
    cube.delete([ids["m3"]], purge=True)  # Dora is orphaned
    cube.archive([ids["m4"]])  # archive leaves the graph: Eve is orphaned
    for key, drink in (("p2", "Cocoa"), ("p3", "Coffee")):
        [outcome] = cube.add(
            [{"text": f"a drink preference, round {key}", "type": "preference", "subject": "drink", "entities": [drink]}]
        )
        assert [s.id for s in outcome.superseded] == [ids["p1" if key == "p2" else "p2"]]
        ids[key] = outcome.id


def _expected(cube, ids: dict[str, str]) -> dict[str, set[tuple]]:
    [m2] = cube.get([ids["m2"]])
    valid_to = m2.relations[0].valid_to  # stored form of the date, as the store keeps it
    assert valid_to is not None and valid_to.startswith("2024-05-01")
    return {
        "memories": {(ids["m2"], "note"), (ids["p1"], "preference"), (ids["p2"], "preference"), (ids["p3"], "preference")},
        "entities": {("ada", "Ada"), ("carol", "Carol"), ("coffee", "Coffee")},
        "mentions": {(ids["m2"], "ada"), (ids["m2"], "carol"), (ids["p3"], "coffee")},
        "related": {("carol", "knows", "ada", ids["m2"], None, valid_to)},
        # The chain keeps its middle: p2 is superseded in turn and still points at p1.
        "supersedes": {(ids["p3"], ids["p2"]), (ids["p2"], ids["p1"])},
    }


@pytest.mark.parametrize("batch", [5000, 1], ids=["one-batch", "one-entry-per-batch"])
def test_batched_resync_gives_the_hand_written_graph_and_the_rebuilt_one(home, batch):
    cube = home.cube()
    ids = _fill(cube)
    while cube.graph_store.apply_outbox(cube.store, limit=batch):
        pass
    assert cube.graph_store.dump()["entities"] == {
        ("ada", "Ada"),
        ("babbage", "Babbage"),
        ("carol", "Carol"),
        ("dora", "Dora"),
        ("eve", "Eve"),
        ("tea", "Tea"),
    }
    _second_round(cube, ids)
    while cube.graph_store.apply_outbox(cube.store, limit=batch):
        pass
    assert cube.stats().graph_pending == 0

    incremental = cube.graph_store.dump()
    assert incremental == _expected(cube, ids)
    cube.rebuild_graph()
    assert cube.graph_store.dump() == incremental


def test_a_failed_batch_rolls_back_and_stays_queued(home, monkeypatch):
    cube = home.cube()
    cube.add([{"text": "a note naming one person", "entities": ["Ada"]}])
    cube.sync_graph()
    before = cube.graph_store.dump()
    cube.add([{"text": "another note naming someone else", "entities": ["Babbage"]}])

    import memory.graph.graph_store as graph_store

    monkeypatch.setattr(graph_store, "_ADD_MENTIONS", "COPY MENTIONS FROM (UNWIND $rows AS r RETURN r.id, r.nonexistent)")
    with pytest.raises(RuntimeError):
        cube.sync_graph()
    assert cube.graph_store.dump() == before  # nothing of the half-written batch is left
    assert cube.stats().graph_pending == 1
    monkeypatch.undo()
    cube.sync_graph()
    assert ("babbage", "Babbage") in cube.graph_store.dump()["entities"]
    assert cube.stats().graph_pending == 0


HOSTILE = [
    "O'Brien",
    'say "hello"',
    "back\\slash",
    "Robert'); MATCH (n) DETACH DELETE n; //",
    'x"}) RETURN 1 UNION MATCH (m) DETACH DELETE m //',
    "MERGE",
    "$ids",
    "{name: 'x'}",
    "tab\there",
    "Zoë ünïcode",
]


def test_hostile_entity_names_are_bound_as_parameters(home):
    cube = home.cube()
    [plain] = cube.add([{"text": "an ordinary note", "entities": ["Plain"]}])
    [hostile] = cube.add(
        [
            {
                "text": "a note with awkward names",
                "entities": HOSTILE,
                "relations": [{"subject": HOSTILE[3], "predicate": "'); DROP TABLE Entity; //", "object": HOSTILE[4]}],
            }
        ]
    )
    cube.sync_graph()
    graph = cube.graph_store.dump()
    assert (plain.id, "plain") in graph["mentions"]
    for name in HOSTILE:
        view = cube.graph(name)
        assert view.entity == name
        assert [m.id for m in view.memories] == [hostile.id]
    [relation] = graph["related"]
    assert relation[1] == "'); DROP TABLE Entity; //"

    cube.delete([hostile.id])
    cube.sync_graph()
    assert cube.graph_store.dump()["entities"] == {("plain", "Plain")}
    cube.rebuild_graph()
    assert cube.graph_store.dump()["entities"] == {("plain", "Plain")}


def _row(memory_id: str, status: str = "active", **fields) -> GraphRow:
    values = {"type": "fact", "entities": [], "relations": [], "supersedes": None, "superseded_by": None, **fields}
    return GraphRow(id=memory_id, status=status, **values)


def test_derive_keeps_first_spellings_and_one_mention_per_name():
    rows = {
        "a": _row("a", entities=["Ada", "ADA", "  ", "Bob"]),
        "b": _row("b", entities=["ada"], relations=[{"subject": "Bob", "predicate": "p", "object": "Cy"}]),
        "c": _row("c", status="archived", entities=["Dee"]),  # archived, not superseded: no part in the graph
        "d": _row("d", status="deleted", entities=["Eve"]),
    }
    out = derive(["a", "b", "c", "d", "gone"], rows)
    assert [m["id"] for m in out.memories] == ["a", "b"]
    assert out.entities == [{"name": "ada", "display": "Ada"}, {"name": "bob", "display": "Bob"}, {"name": "cy", "display": "Cy"}]
    assert out.mentions == [{"id": "a", "name": "ada"}, {"id": "a", "name": "bob"}, {"id": "b", "name": "ada"}]
    assert out.relations == [{"a": "bob", "b": "cy", "p": "p", "id": "b", "vf": None, "vt": None, "o": "client", "x": None}]


def test_derive_links_from_either_end_and_from_neighbours():
    rows = {
        "new": _row("new", supersedes="old1"),
        "old1": _row("old1", status="archived", superseded_by="new", supersedes="older"),
    }
    neighbours = {
        "old2": _row("old2", status="archived", superseded_by="new"),  # replaced too; only its own row says so
        "elsewhere": _row("elsewhere", status="archived", superseded_by="someone-else"),
    }
    out = derive(["new", "old1"], rows, neighbours)
    assert {(link["a"], link["b"]) for link in out.supersedes} == {("new", "old1"), ("old1", "older"), ("new", "old2")}


def test_a_failed_rebuild_keeps_the_old_graph_and_is_tried_again(home, monkeypatch):
    cube = home.cube()
    cube.add([{"text": "a note naming two people", "entities": ["Ada", "Babbage"]}])
    cube.sync_graph()
    before = cube.graph_store.dump()

    import memory.graph.graph_store as graph_store

    monkeypatch.setattr(graph_store, "_ADD_MENTIONS", "COPY MENTIONS FROM (UNWIND $rows AS r RETURN r.id, r.nonexistent)")
    with pytest.raises(RuntimeError):
        cube.rebuild_graph()
    assert cube.graph_store.needs_rebuild
    assert cube.graph_store.dump() == before  # the dropped tables came back with the rollback
    monkeypatch.undo()
    assert cube.sync_graph() == 1  # the rebuild, tried again
    assert not cube.graph_store.needs_rebuild
    assert cube.graph_store.dump() == before
