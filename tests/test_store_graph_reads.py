"""The reads the graph, the entity caches, search and supersession make, on both engines (issue 28).

Each test runs on the data folder's SQLite cube (``CubeStore``) and on a cube of the PostgreSQL
store (``PostgresCubeStore``, ``postgres`` tier), through the same calls and with the same
expected answers: ``PostgresGraphReads`` answers as ``CubeStore`` does. The last tests feed a
real Kuzu graph (``GraphStore``) from each engine and compare the graphs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import ENGINES
from test_store_writes import DIM, Cube, _postgres, _sqlite, _vector, add_one, engine_cube, new

from memory.graph.graph_store import GraphStore


@pytest.fixture(params=ENGINES)
def cube(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cube]:
    with engine_cube(request, tmp_path) as made:
        yield made


def row_id(cube: Cube, memory_id: str) -> int:
    """A memory's row id in its engine (each numbers its own)."""
    with cube.store.write() as conn:
        if cube.engine == "sqlite":
            return int(conn.execute("SELECT row_id FROM memories WHERE id = ?", (memory_id,)).fetchone()[0])
        found = conn.execute("SELECT row_id FROM memories WHERE cube = %s AND id = %s", (cube.store.cube_id, memory_id))
        return int(found.fetchone()[0])


def ids_of(cube: Cube, row_ids: list[int]) -> list[str]:
    """The memory ids of these row ids, in their order (through ``hit_rows``)."""
    rows = cube.store.hit_rows(row_ids)
    return [rows[r][0] for r in row_ids]


def delete(cube: Cube, memory_id: str) -> None:
    cube.store.set_status([memory_id], to="deleted", allowed_from=("active", "archived"), op="delete", client="t")


def archive(cube: Cube, memory_id: str) -> None:
    cube.store.set_status([memory_id], to="archived", allowed_from=("active",), op="archive", client="t")


def lives_in(source: str, target: str, ended: bool = False) -> dict[str, Any]:
    return {"source": source, "type": "lives_in", "target": target, "ended": ended}


# -- entities -----------------------------------------------------------------------------


def test_entity_keys_and_top_entities_follow_adds_deletes_and_updates(cube: Cube) -> None:
    assert cube.store.entity_keys() == {} and cube.store.top_entities(5) == []
    first = add_one(cube, new("Ana went to Porto.", entities=["ana", "Porto"]))
    second = add_one(cube, new("Ana flew to Lisbon.", entities=["Ana", "Lisbon"]))
    add_one(cube, new("Zoë likes Porto.", entities=["Zoë", "Porto"]))
    # One display name per key: the least, byte by byte ("Ana" before "ana").
    assert cube.store.entity_keys() == {"ana": "Ana", "porto": "Porto", "lisbon": "Lisbon", "zoe": "Zoë"}
    assert cube.store.top_entities(3) == [("Ana", 2), ("Porto", 2), ("Lisbon", 1)]
    delete(cube, second)
    assert cube.store.entity_keys() == {"ana": "ana", "porto": "Porto", "zoe": "Zoë"}
    cube.store.update(first, {"entities": ["Ana", "Braga"]}, vector=None, model_id=None, client="t")
    assert cube.store.entity_keys() == {"ana": "Ana", "braga": "Braga", "porto": "Porto", "zoe": "Zoë"}
    assert cube.store.top_entities(10) == [("Ana", 1), ("Braga", 1), ("Porto", 1), ("Zoë", 1)]
    archive(cube, first)  # archived memories are live: their entities stay
    assert "braga" in cube.store.entity_keys()


def test_entity_key_delta_reads_what_was_added_then_everything_after_a_delete(cube: Cube) -> None:
    state, keys, whole = cube.store.entity_key_delta(None)
    assert (state, keys, whole) == ((0, "0"), set(), True)  # a cube nobody wrote to
    first = add_one(cube, new("Ana went to Porto.", entities=["Ana", "Porto"]))
    state, keys, whole = cube.store.entity_key_delta(state)
    assert (keys, whole) == ({"ana", "porto"}, False) and state[0] > 0
    assert cube.store.entity_key_delta(state) == (state, set(), False)  # nothing since
    add_one(cube, new("Kim met Ana.", entities=["Kim", "Ana"]))
    later, keys, whole = cube.store.entity_key_delta(state)
    assert (keys, whole) == ({"kim", "ana"}, False) and later[0] > state[0] and later[1] == state[1]
    delete(cube, first)  # entity rows left: a reader that followed adds only starts over
    after, keys, whole = cube.store.entity_key_delta(later)
    assert (keys, whole) == ({"kim", "ana"}, True) and after[1] != later[1]
    assert cube.store.entity_key_delta(after) == (after, set(), False)
    assert cube.store.entity_key_delta((after[0] + 5, after[1]))[2]  # a state from the future: whole


# -- relations and the graph's rows ----------------------------------------------------------


def test_relation_peers_merges_relations_read_from_texts_and_given_by_clients(cube: Cube) -> None:
    porto = add_one(cube, new("Ana lives in Porto.", occurred_at="2025-01-01T00:00:00Z", extracted=[lives_in("Ana", "Porto")]))
    given = add_one(
        cube,
        new(
            "Ana's new home is Lisbon.",
            relations=[{"subject": "ANA", "predicate": "lives_in", "object": "Lisbon", "valid_from": "2026-02-01T00:00:00Z"}],
            extracted=[lives_in("Ana", "Faro")],  # unused: the client gave relations
        ),
    )
    undated = add_one(cube, new("Ana lived in Braga.", extracted=[lives_in("Ana", "Braga", ended=True)]))
    bo = add_one(cube, new("Bo lives in Porto.", extracted=[lives_in("Bo", "Porto")]))
    gone = add_one(cube, new("Ana lives in Faro.", extracted=[lives_in("Ana", "Faro")]))
    archive(cube, gone)  # only active memories have peers
    created = cube.store.get_many([undated])[0].created_at
    peers = cube.store.relation_peers([("ana", "lives_in"), ("ana", "lives_in")])
    assert sorted((p.source, p.type, p.target, p.memory_id, p.at, p.ended) for p in peers) == sorted(
        [
            ("ana", "lives_in", "porto", porto, "2025-01-01T00:00:00Z", False),
            ("ana", "lives_in", "lisbon", given, "2026-02-01T00:00:00Z", False),
            ("ana", "lives_in", "braga", undated, created, True),
        ]
    )
    assert [(p.target, p.memory_id) for p in cube.store.relation_peers([("bo", "lives_in")])] == [("porto", bo)]
    assert cube.store.relation_peers([("ana", "works_at")]) == [] and cube.store.relation_peers([]) == []


def test_graph_rows_member_ids_and_known_ids(cube: Cube) -> None:
    older = add_one(cube, new("Sam lives in Porto.", subject="sam home", entities=["Sam", "Porto"]))
    newer = add_one(
        cube,
        new(
            "Sam lives in Lisbon.",
            subject="sam home",
            entities=["Sam", "Lisbon"],
            occurred_at="2026-03-01T10:00:00Z",
            extracted=[
                lives_in("Sam", "Lisbon"),
                {"source": "Sam", "type": "works_at", "target": "Acme"},
                lives_in("Sam", "Beja"),
            ],
        ),
    )
    client = add_one(cube, new("Bo works at Acme.", relations=[{"subject": "Bo", "predicate": "works_at", "object": "Acme"}]))
    shelved = add_one(cube, new("An old note."))
    archive(cube, shelved)
    dropped = add_one(cube, new("A deleted note."))
    delete(cube, dropped)
    purged = add_one(cube, new("A purged note."))
    cube.store.purge([purged], client="t")

    rows = cube.store.graph_rows([newer, older, client, dropped, purged])
    assert set(rows) == {newer, older, client, dropped}  # a purged memory has no row
    row = rows[newer]
    assert (row.id, row.status, row.type, row.entities, row.relations) == (newer, "active", "fact", ["Sam", "Lisbon"], [])
    assert (row.supersedes, row.superseded_by, row.at) == (older, None, "2026-03-01T10:00:00Z")
    assert row.extracted == [  # in the order of the relation's key: source, type, target
        {"source": "Sam", "type": "lives_in", "target": "Beja", "ended": False},
        {"source": "Sam", "type": "lives_in", "target": "Lisbon", "ended": False},
        {"source": "Sam", "type": "works_at", "target": "Acme", "ended": False},
    ]
    old = rows[older]
    [stored_old] = cube.store.get_many([older])
    assert (old.status, old.superseded_by, old.at, old.updated_at) == (
        "archived",
        newer,
        stored_old.created_at,
        stored_old.updated_at,
    )
    assert rows[client].relations == [{"subject": "Bo", "predicate": "works_at", "object": "Acme"}]
    assert rows[client].extracted == [] and rows[dropped].status == "deleted"
    assert cube.store.graph_rows([]) == {}

    assert sorted(cube.store.graph_member_ids()) == sorted([older, newer, client])
    unknown = "mem_01aaaaaaaaaaaaaaaaaaaaaaaa"
    assert cube.store.known_ids([newer, dropped, purged, unknown]) == {newer, dropped, purged}


def test_read_relations_are_saved_and_queued(cube: Cube) -> None:
    assert cube.store.unread_relations(10) == ([], 0)  # a new cube has no memory written before relations were read
    memory_id = add_one(cube, new("Ana lives in Porto."))
    plain = add_one(cube, new("Nothing to read here."))
    done = cube.store.outbox_batch(100)
    cube.store.outbox_done(done[-1].seq)
    cube.store.save_read_relations([(row_id(cube, memory_id), [lives_in("Ana", "Porto")]), (row_id(cube, plain), [])], done=True)
    assert cube.store.graph_rows([memory_id])[memory_id].extracted == [
        {"source": "Ana", "type": "lives_in", "target": "Porto", "ended": False}
    ]
    assert [c.memory_id for c in cube.store.outbox_batch(100)] == [memory_id]  # only memories with relations
    assert [p.memory_id for p in cube.store.relation_peers([("ana", "lives_in")])] == [memory_id]
    assert cube.store.meta("relations_unread_from") is None and cube.store.unread_relations(10) == ([], 0)


def test_the_outbox_gives_changes_in_order_until_they_are_done(cube: Cube) -> None:
    first = add_one(cube, new("First."))
    second = add_one(cube, new("Second."))
    cube.store.update(first, {"text": "First, again."}, vector=None, model_id=None, client="t")
    batch = cube.store.outbox_batch(10)
    assert [c.memory_id for c in batch] == [first, second, first]
    assert [c.seq for c in batch] == sorted(c.seq for c in batch) and cube.store.outbox_high() == batch[-1].seq
    assert cube.store.outbox_batch(2) == batch[:2]
    cube.store.outbox_done(batch[1].seq)
    assert cube.store.outbox_batch(10) == batch[2:]
    cube.store.outbox_done(batch[-1].seq, rebuilt=True)
    assert cube.store.outbox_batch(10) == [] and cube.store.counts()["graph_pending"] == 0


# -- vectors, supersession, threads, search hits -------------------------------------------


def test_nearest_vector_of_and_judging_rows(cube: Cube) -> None:
    ids = [
        add_one(cube, new(f"Note {n} about Ana.", entities=["Ana", f"Topic {n}"], subject=f"s{n}", vector=_vector(10 + n)))
        for n in range(4)
    ]
    plain = add_one(cube, new("A note with no vector."))
    query = _vector(10) + 0.3 * _vector(11)
    query = (query / np.linalg.norm(query)).astype(np.float32)
    found = cube.store.nearest(query, 2)
    assert ids_of(cube, [r for r, _ in found]) == ids[:2]
    expected = [float(query @ _vector(10)), float(query @ _vector(11))]
    assert [c for _, c in found] == pytest.approx(expected, abs=1e-5)
    archive(cube, ids[0])
    assert ids_of(cube, [r for r, _ in cube.store.nearest(query, 1)]) == [ids[1]]
    assert ids_of(cube, [r for r, _ in cube.store.nearest(query, 1, include_archived=True)]) == [ids[0]]
    assert len(cube.store.nearest(query, 10)) == 3  # the archived one and the one with no vector are not searched

    stored = cube.store.vector_of(ids[2])
    assert stored is not None and stored.dtype == np.float32 and stored.shape == (DIM,)
    assert np.allclose(stored, _vector(12), atol=1e-6)
    assert cube.store.vector_of(plain) is None and cube.store.vector_of("mem_01aaaaaaaaaaaaaaaaaaaaaaaa") is None

    rows = [row_id(cube, i) for i in (ids[3], plain, ids[1])]
    judged = cube.store.judging_rows(rows)
    assert [r[0] for r in judged] == sorted(rows)
    assert judged[0][1:] == (ids[1], "Note 1 about Ana.", "fact", None, "s1", ["Ana", "Topic 1"])
    assert judged[1][1:] == (ids[3], "Note 3 about Ana.", "fact", None, "s3", ["Ana", "Topic 3"])
    assert judged[2][1:] == (plain, "A note with no vector.", "fact", None, None, [])
    assert cube.store.judging_rows([]) == []


def test_thread_neighbours_walk_a_session_in_time_order(cube: Cube) -> None:
    at = "2026-01-05T10:0{}:00Z"
    said = {}
    # Written out of order; two turns at one time keep the order they were written in.
    for name, when in (("c", at.format(3)), ("a", at.format(1)), ("e", at.format(5)), ("b", at.format(2)), ("b2", at.format(2))):
        said[name] = add_one(cube, new(f"turn {name}", "message", session_id="chat-1", occurred_at=when))
    said["d"] = add_one(cube, new("turn d", "message", session_id="chat-1", occurred_at="2026-01-05T10:04:00.500Z"))
    said["zero"] = add_one(cube, new("turn without a time", "message", session_id="chat-1"))  # first: no time sorts before any
    said["other"] = add_one(cube, new("another chat", "message", session_id="chat-2", occurred_at=at.format(3)))
    said["alone"] = add_one(cube, new("a note in no thread"))
    archive(cube, said["d"])
    names = {v: k for k, v in said.items()}

    def around(memory_id: str, turns: int, statuses: tuple[str, ...] = ("active",)) -> list[tuple[str, str, int]]:
        found = cube.store.thread_neighbours_of([memory_id], turns, statuses)
        return [(names[m], names[n], offset) for m, n, offset in zip_ids(found)]

    def zip_ids(found: list[tuple[str, int, int]]) -> list[tuple[str, str, int]]:
        neighbours = ids_of(cube, [n for _, n, _ in found])
        return [(m, n, offset) for (m, _, offset), n in zip(found, neighbours, strict=True)]

    assert around(said["c"], 2) == [("c", "b", -2), ("c", "b2", -1), ("c", "e", 1)]
    assert around(said["c"], 2, ("active", "archived")) == [("c", "b", -2), ("c", "b2", -1), ("c", "d", 1), ("c", "e", 2)]
    assert around(said["a"], 1) == [("a", "zero", -1), ("a", "b", 1)]
    assert around(said["zero"], 3) == [("zero", "a", 1), ("zero", "b", 2), ("zero", "b2", 3)]
    assert around(said["alone"], 2) == [] and around(said["other"], 2) == []
    assert around(said["c"], 0) == []
    both = cube.store.thread_neighbours_of([said["e"], "mem_01aaaaaaaaaaaaaaaaaaaaaaaa", said["a"]], 1, ("active",))
    assert [(names[m], offset) for m, _, offset in both] == [("e", -1), ("a", -1), ("a", 1)]
    assert cube.store.thread_neighbours_of([], 2, ("active",)) == []


def test_hit_rows_show_what_a_search_hit_needs(cube: Cube) -> None:
    memory_id = add_one(
        cube, new("Renew the passport.", "task", tags=["admin", "travel"], state="todo", due_at="2026-06-01T00:00:00Z")
    )
    [memory] = cube.store.get_many([memory_id])
    found = cube.store.hit_rows([row_id(cube, memory_id), 10**9])
    [(_, row)] = found.items()
    assert (*row[:3], json.loads(row[3]), *row[4:]) == (
        memory_id,
        "Renew the passport.",
        "task",
        ["admin", "travel"],
        None,
        memory.created_at,
        "active",
        "todo",
        "2026-06-01T00:00:00Z",
        None,
    )
    assert cube.store.hit_rows([]) == {}


# -- a local Kuzu graph following either engine ----------------------------------------------


def write_story(cube: Cube) -> dict[str, str]:
    """The same writes on any engine; returns each memory's id by a name of the test's."""
    bo_works = {"subject": "Bo", "predicate": "works_at", "object": "Acme", "valid_from": "2025-05-01T00:00:00Z"}
    story: list[tuple[str, str, list[str], str, dict[str, Any]]] = [
        ("porto", "Ana lives in Porto.", ["Ana", "Porto"], "2025-01-01", {"extracted": [lives_in("Ana", "Porto")]}),
        ("lisbon", "Ana moved to Lisbon.", ["ANA", "Lisbon"], "2026-01-01", {"extracted": [lives_in("Ana", "Lisbon")]}),
        ("job", "Bo works at Acme.", ["Bo", "Acme"], "2025-06-01", {"relations": [bo_works]}),
        ("old_home", "Sam lives in Faro.", ["Sam"], "2024-01-01", {"subject": "sam home"}),
        ("new_home", "Sam lives in Beja.", ["Sam", "Beja"], "2025-01-01", {"subject": "sam home"}),  # supersedes old_home
        ("ghost", "A ghost note.", ["Ghost"], "2025-01-01", {}),
    ]
    ids = {
        name: add_one(cube, new(text, entities=entities, occurred_at=f"{day}T00:00:00Z", **more))
        for name, text, entities, day, more in story
    }
    delete(cube, ids["ghost"])
    return ids


def graph_of(cube: Cube, graph_path: Path, *, rebuilt: bool = False) -> dict[str, set[tuple[Any, ...]]]:
    """The graph a local Kuzu database derives from the cube (by its change log, or rebuilt), memory ids named."""
    graph = GraphStore(graph_path)
    try:
        if rebuilt:
            graph.rebuild(cube.store)
        else:
            while graph.apply_outbox(cube.store):
                pass
        assert cube.store.outbox_batch(10) == []
        dump = graph.dump(validity=True)
        current = {(r.subject, r.predicate, r.object, r.current) for r in graph.entity("Ana").relations}
    finally:
        graph.close()
    names = {memory.id: memory.text for memory in cube.store.get_many(list(_memory_ids(dump)))}
    named = {part: {tuple(names.get(v, v) for v in row) for row in rows} for part, rows in dump.items()}
    named["ana"] = current
    return named


def _memory_ids(dump: dict[str, set[tuple[Any, ...]]]) -> set[str]:
    return {v for rows in dump.values() for row in rows for v in row if isinstance(v, str) and v.startswith("mem_")}


STORY_GRAPH = {
    "memories": {
        ("Ana lives in Porto.", "fact"),
        ("Ana moved to Lisbon.", "fact"),
        ("Bo works at Acme.", "fact"),
        ("Sam lives in Faro.", "fact"),
        ("Sam lives in Beja.", "fact"),
    },
    "entities": {("ana", "Ana"), ("porto", "Porto"), ("lisbon", "Lisbon"), ("bo", "Bo"), ("acme", "Acme"), ("sam", "Sam")}
    | {("beja", "Beja")},
    "mentions": {
        ("Ana lives in Porto.", "ana"),
        ("Ana lives in Porto.", "porto"),
        ("Ana moved to Lisbon.", "ana"),
        ("Ana moved to Lisbon.", "lisbon"),
        ("Bo works at Acme.", "bo"),
        ("Bo works at Acme.", "acme"),
        ("Sam lives in Beja.", "sam"),
        ("Sam lives in Beja.", "beja"),
    },
    "related": {
        (
            "ana",
            "lives_in",
            "porto",
            "Ana lives in Porto.",
            "2025-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
            "extracted",
            "Ana moved to Lisbon.",
        ),
        ("ana", "lives_in", "lisbon", "Ana moved to Lisbon.", "2026-01-01T00:00:00Z", None, "extracted", None),
        ("bo", "works_at", "acme", "Bo works at Acme.", "2025-05-01T00:00:00Z", None, "client", None),
    },
    "supersedes": {("Sam lives in Beja.", "Sam lives in Faro.")},
    "ana": {("Ana", "lives_in", "Porto", False), ("Ana", "lives_in", "Lisbon", True)},
}


def test_a_local_graph_follows_the_cube_through_its_change_log(cube: Cube, tmp_path: Path) -> None:
    write_story(cube)
    followed = graph_of(cube, tmp_path / "followed" / "graph.kuzu")
    assert followed == STORY_GRAPH
    assert graph_of(cube, tmp_path / "rebuilt" / "graph.kuzu", rebuilt=True) == followed


def test_a_local_graph_drops_what_a_later_change_removes(cube: Cube, tmp_path: Path) -> None:
    ids = write_story(cube)
    path = tmp_path / "graph" / "graph.kuzu"
    graph_of(cube, path)
    delete(cube, ids["lisbon"])  # Porto opens again
    cube.store.purge([ids["job"]], client="t")
    after = graph_of(cube, path)
    assert after["ana"] == {("Ana", "lives_in", "Porto", True)}
    assert ("Bo works at Acme.", "fact") not in after["memories"] and ("acme", "Acme") not in after["entities"]
    assert after == graph_of(cube, tmp_path / "rebuilt" / "graph.kuzu", rebuilt=True)


@pytest.mark.postgres
def test_both_engines_give_one_graph_for_the_same_writes(tmp_path: Path, postgres_database: str) -> None:
    with _sqlite(tmp_path) as lite, _postgres(postgres_database) as shared:
        graphs = []
        for made in (lite, shared):
            ids = write_story(made)
            made.store.update(ids["porto"], {"entities": ["Ana", "Porto", "Douro"]}, vector=None, model_id=None, client="t")
            graphs.append(graph_of(made, tmp_path / made.engine / "graph.kuzu"))
        assert graphs[0] == graphs[1]
        assert ("douro", "Douro") in graphs[1]["entities"]
        assert lite.store.entity_keys() == shared.store.entity_keys()
        assert lite.store.top_entities(10) == shared.store.top_entities(10)
