"""Typed relations read from texts into the graph, bi-temporally (issue 27, relations).

"Bob's daughter Carol", "Grace is Maya's mentor at Stripe" and "Zoe starts at Google" give
relations; a newer memory that changes an exclusive relation (lives_in) closes the older
one instead of deleting it; ``memory_graph`` answers who Carol is to Bob over MCP; the graph
rebuilt from SQLite keeps the relations and their validity; names are bound parameters.
"""

from __future__ import annotations

import sqlite3

import kuzu
import pytest
from support import error, ok

from memory import MemoryHome
from memory.doctor import check_cube
from memory.store import schema

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


@pytest.fixture
def cube(home):
    return home.cube(create=True)


def extract_relations(text: str, **options):
    from memory.relations import extract_relations  # imported here: on the starting code each test fails alone

    return extract_relations(text, **options)


def triples(text: str) -> set[tuple[str, str, str]]:
    return {(r.source, r.type, r.target) for r in extract_relations(text) if not r.ended}


def test_the_issues_three_examples():
    assert triples("Bob's daughter Carol starts school in May.") == {("Carol", "daughter_of", "Bob")}
    assert triples("Grace is Maya's mentor at Stripe.") == {("Grace", "mentor_of", "Maya"), ("Grace", "works_at", "Stripe")}
    assert triples("Zoe starts at Google next week.") == {("Zoe", "works_at", "Google")}


def test_general_patterns_and_what_is_left_alone():
    from memory.relations import ExtractedRelation

    assert ("Carol", "daughter_of", "Bob") in triples("Carol, Bob's daughter, loves horses.")
    assert triples("Tom and Anna are married.") == {("Tom", "spouse_of", "Anna")}
    assert triples("Priya joined the chess club.") == {("Priya", "member_of", "chess club")}
    assert triples("Kim reports to Ravi.") == {("Ravi", "manager_of", "Kim")}
    moved = extract_relations("Elena moved from Lyon to Barcelona.", ended=True)
    assert ExtractedRelation("Elena", "lives_in", "Barcelona") in moved
    assert ExtractedRelation("Elena", "lives_in", "Lyon", ended=True) in moved  # the store closes it
    assert ExtractedRelation("Elena", "lives_in", "Lyon", ended=True) not in extract_relations("Elena moved from Lyon.")
    assert triples("Kofi used to work at Deloitte.") == set() and triples("Leo moved the meeting to Tuesday.") == set()
    # No relation from a command, a pronoun, the writer, or a negation
    for text in ("Send Marco the Q1 hiring plan.", "She works at Google.", "I moved to Lisbon.", "Marco prefers espresso."):
        assert extract_relations(text) == [], text
    assert triples("Tom doesn't work at Apple.") == set()


def test_a_move_closes_the_old_place_instead_of_deleting_it(cube):
    old = cube.add([{"text": "Elena lives in Lyon.", "occurred_at": "2025-01-05T10:00:00Z"}])[0].id
    new = cube.add([{"text": "Elena moved to Barcelona.", "occurred_at": "2025-03-01T10:00:00Z"}])[0].id
    relations = cube.graph("Elena").relations
    current = [(r.object, r.source_memory) for r in relations if r.predicate == "lives_in" and r.current]
    assert current == [("Barcelona", new)]
    assert relations[0].object == "Barcelona"  # current ones first
    closed = [r for r in relations if r.object == "Lyon"]
    assert len(closed) == 1 and closed[0].source_memory == old and not closed[0].current
    assert closed[0].valid_from == "2025-01-05T10:00:00Z" and closed[0].valid_to == "2025-03-01T10:00:00Z"
    assert closed[0].invalidated_by == new and closed[0].origin == "extracted"
    # The newer memory gone, the older relation holds again.
    cube.delete([new])
    (lyon,) = [r for r in cube.graph("Elena").relations if r.predicate == "lives_in"]
    assert lyon.object == "Lyon" and lyon.current and lyon.invalidated_by is None


def test_client_relations_win_over_extracted_ones(cube):
    cube.add(
        [
            {
                "text": "Bob's daughter Carol starts school in May.",
                "relations": [{"subject": "Carol", "predicate": "child_of", "object": "Bob"}],
            }
        ]
    )
    (rel,) = cube.graph("Carol", to="Bob").relations
    assert (rel.predicate, rel.origin) == ("child_of", "client")


async def test_memory_graph_says_who_carol_is_to_bob(client):
    added = await ok(client, "memory_add", text="Bob's daughter Carol starts school in May.")
    await ok(client, "memory_add", text="Grace is Maya's mentor at Stripe.")
    await ok(client, "memory_add", text="Carol and Dana are friends.")
    view = await ok(client, "memory_graph", entity="Carol", to="Bob")
    assert [(r["subject"], r["predicate"], r["object"]) for r in view["relations"]] == [("Carol", "daughter_of", "Bob")]
    assert view["relations"][0]["source_memory"] == added["ids"][0] and view["relations"][0]["current"] is True
    whole = await ok(client, "memory_graph", entity="Carol")  # without `to`: every relation of Carol, as before
    assert {r["predicate"] for r in whole["relations"]} == {"daughter_of", "friend_of"}
    assert "to" in await error(client, "memory_graph", entity="Carol", to="")
    assert "to" in await error(client, "memory_graph", entity="Carol", to=5)
    assert "Nobody" in await error(client, "memory_graph", entity="Carol", to="Nobody")


def test_the_graph_rebuilt_from_sqlite_keeps_relations_and_their_validity(cube):
    cube.add([{"text": "Zoe works at Initech.", "occurred_at": "2025-01-01T09:00:00Z"}])
    google = cube.add([{"text": "Zoe starts at Google next week.", "occurred_at": "2025-06-01T09:00:00Z"}])[0].id
    cube.add([{"text": "Bob's daughter Carol starts school in May."}])
    cube.sync_graph()
    before = cube.graph_store.dump(validity=True)["related"]
    closed = [row for row in before if row[1] == "works_at" and row[2] == "initech"]
    assert [row[4:] for row in closed] == [("2025-01-01T09:00:00Z", "2025-06-01T09:00:00Z", "extracted", google)]
    cube.graph_store.rebuild(cube.store)
    assert cube.graph_store.dump(validity=True)["related"] == before


def test_an_older_cube_is_migrated_and_doctor_reads_its_relations(tmp_path, shared_embedder):
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    cube = home.cube(create=True)
    cube.add([{"text": "Ana lives in Porto.", "relations": [{"subject": "Ana", "predicate": "lives_in", "object": "Porto"}]}])
    cube.add([{"text": "Bob's daughter Carol starts school in May."}])
    cube.sync_graph()
    db_path, graph_path = cube.store.path, cube.graph_store.path
    home.close()
    with sqlite3.connect(db_path) as conn:  # as schema 10 left it
        conn.execute("DROP TABLE memory_relations")
        conn.execute("DELETE FROM cube_meta WHERE key = 'relations_unread_below'")
        conn.execute("PRAGMA user_version = 10")
    conn.close()
    db = kuzu.Database(str(graph_path))
    old = kuzu.Connection(db)
    old.execute("ALTER TABLE RELATED DROP origin")
    old.execute("ALTER TABLE RELATED DROP invalidated_by")
    old.close()
    db.close()

    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        cube = home.cube()
        assert cube.stats().schema_version == schema.SCHEMA_VERSION == 11
        (rel,) = cube.graph("Ana").relations  # the old graph got the new columns and was derived again
        assert (rel.object, rel.origin, rel.current) == ("Porto", "client", True)
        assert cube.graph("Carol").relations == []  # written before texts were read for relations
        report = check_cube(cube)
        assert any("older memories (1 written before" in r for r in report.repairs), report.render()
        (rel,) = cube.graph("Carol", to="Bob").relations
        assert (rel.predicate, rel.origin) == ("daughter_of", "extracted")
        assert cube.store.meta("relations_unread_below") is None
        assert not any("relations" in r for r in check_cube(cube).repairs)
    finally:
        home.close()


def test_hostile_names_are_bound_parameters(cube):
    hostile = "X'}) MATCH (n) DETACH DELETE n //"
    cube.add([{"text": "Bob's daughter Carol starts school in May."}])
    cube.add([{"text": "a note", "relations": [{"subject": hostile, "predicate": "owns", "object": 'Y" RETURN 1 //'}]}])
    cube.add([{"text": "O'Brien's daughter D'Arcy moved to Baton Rouge."}])
    assert cube.graph("Carol", to="Bob").relations[0].predicate == "daughter_of"
    (rel,) = cube.graph(hostile).relations
    assert (rel.subject, rel.object) == (hostile, 'Y" RETURN 1 //')
    names = {(r.subject, r.predicate, r.object) for r in cube.graph("D'Arcy").relations}
    assert ("D'Arcy", "daughter_of", "O'Brien") in names and ("D'Arcy", "lives_in", "Baton Rouge") in names
