"""The read path on both engines: listing, browsing, the profile, activity, export and re-embedding reads.

Each test runs on the data folder's SQLite cube (``CubeStore``) and on a cube of the PostgreSQL
store (``PostgresCubeStore``, ``postgres`` tier), through the same calls, and asserts the same
values: a read must not depend on the engine. Times are set in the rows where an order depends
on them, and some values sort differently by locale than byte by byte ('Zed' before 'alice'),
as SQLite sorts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ENGINES
from test_store_writes import MODEL, Cube, _postgres, _sqlite, _vector, add_one, new

from memory.errors import InvalidInput
from memory.models import FeedbackEntry
from memory.store import cube_store, read_rules
from memory.store.browse import BrowseFilter

HOSTILE = 'it\'s 50% {} %s "q" ?| $1 --'


@pytest.fixture(params=ENGINES)
def cube(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cube]:
    """``test_store_writes``' cube on each engine."""
    engine = _sqlite(tmp_path) if request.param == "sqlite" else _postgres(request.getfixturevalue("postgres_database"))
    with engine as made:
        yield made


def run_sql(cube: Cube, statement: str, params: list[Any]) -> None:
    """A test's own write to the cube's rows (``?`` placeholders; the PostgreSQL database holds this one cube)."""
    with cube.store.write() as conn:
        conn.execute(statement if cube.engine == "sqlite" else statement.replace("?", "%s"), params)


def set_times(cube: Cube, memory_id: str, **times: str) -> None:
    for column, value in times.items():
        assert column in ("created_at", "updated_at")
        run_sql(cube, f"UPDATE memories SET {column} = ? WHERE id = ?", [value, memory_id])


def day(n: int, hour: int = 12) -> str:
    return f"2026-01-{n:02d}T{hour:02d}:00:00Z"


def test_row_ids_and_memories_by_row_id(cube: Cube) -> None:
    ids = [add_one(cube, new(f"note {n}")) for n in range(3)]
    rows = cube.store.row_ids_of(ids)
    found = cube.store.get_by_row_ids(rows)
    by_id = {m.id: row for row, m in found.items()}
    assert sorted(by_id) == sorted(ids) and found[by_id[ids[1]]].text == "note 1"
    assert found[by_id[ids[1]]].cube == cube.store.cube
    assert rows == [by_id[i] for i in sorted(ids)]  # in memory-id order, as SQLite's index reads them
    assert cube.store.row_ids_of([ids[2], "mem_01unknownunknownunknownun", ids[0]]) == [by_id[i] for i in sorted(ids[::2])]
    assert cube.store.row_ids_of([]) == []
    some = cube.store.get_by_row_ids([by_id[ids[1]], by_id[ids[0]], 10**9])
    assert {r: m.id for r, m in some.items()} == {by_id[ids[1]]: ids[1], by_id[ids[0]]: ids[0]}
    assert cube.store.get_by_row_ids([]) == {}


def test_recent_is_newest_first_per_status_and_iter_all_reads_every_row(cube: Cube) -> None:
    ids = [add_one(cube, new(f"entry {n}")) for n in range(5)]
    for n, memory_id in enumerate(ids):
        set_times(cube, memory_id, created_at=day(n + 1))
    set_times(cube, ids[4], created_at=day(2))  # ties with ids[1]: the later row first
    cube.store.set_status([ids[0]], to="archived", allowed_from=("active",), op="archive", client="t")
    cube.store.set_status([ids[3]], to="deleted", allowed_from=("active",), op="delete", client="t")
    assert [m.id for m in cube.store.recent(3)] == [ids[2], ids[4], ids[1]]
    assert [m.id for m in cube.store.recent(status="archived")] == [ids[0]]
    assert [m.id for m in cube.store.recent(status="deleted")] == [ids[3]]
    every = list(cube.store.iter_all(batch=2))
    assert [m.id for m in every] == ids
    assert [m.status for m in every] == ["archived", "active", "active", "deleted", "active"]


def test_paging_with_a_tag_and_a_time_filter(cube: Cube) -> None:
    walks = [add_one(cube, new(f"walk {n}", tags=["walk", "outside"])) for n in range(7)]
    for n, memory_id in enumerate(walks):
        set_times(cube, memory_id, created_at=day(2 + n))
    set_times(cube, walks[5], created_at=day(2 + 4))  # the same time as walks[4]: the row id breaks the tie
    early = add_one(cube, new("walk before the window", tags=["walk"]))
    set_times(cube, early, created_at=day(1))
    late = add_one(cube, new("walk after the window", tags=["walk"]))
    set_times(cube, late, created_at="2026-01-10T00:00:00Z")
    untagged = add_one(cube, new("a swim"))
    set_times(cube, untagged, created_at=day(5))
    gone = add_one(cube, new("deleted walk", tags=["walk"]))
    set_times(cube, gone, created_at=day(5))
    cube.store.set_status([gone], to="deleted", allowed_from=("active",), op="delete", client="t")

    browse = BrowseFilter(tag="walk", since="2026-01-02", until="2026-01-09")
    assert cube.store.count_matching(browse) == 7
    seen: list[str] = []
    cursors: list[tuple[str, int] | None] = []
    after = None
    for _ in range(4):
        memories, after = cube.store.page(browse, after=after, limit=3)
        seen += [m.id for m in memories]
        cursors.append(after)
        if after is None:
            break
    assert seen == [walks[6], walks[5], walks[4], walks[3], walks[2], walks[1], walks[0]]
    assert [c is None for c in cursors] == [False, False, True]
    assert cursors[0] is not None and cursors[0][0] == day(6)
    assert cube.store.count_matching(BrowseFilter(tag="walk", status="any")) == 10
    assert cube.store.count_matching(BrowseFilter(status="deleted")) == 1
    assert cube.store.count_matching(BrowseFilter(until="2026-01-01")) == 1
    assert cube.store.count_matching(BrowseFilter(tag="outside", since="2026-01-08T12:00:00Z")) == 1
    everything, end = cube.store.page(BrowseFilter(), after=None, limit=50)
    assert end is None and everything[0].id == late and len(everything) == 10


def test_a_hostile_tag_round_trips_through_the_filters(cube: Cube) -> None:
    hostile = add_one(cube, new("a tag with quotes", tags=[HOSTILE, "plain"]))
    add_one(cube, new("a plain one", tags=["plain"]))
    add_one(cube, new("a near miss", tags=["it's 50% {} %s"]))
    memories, after = cube.store.page(BrowseFilter(tag=HOSTILE), after=None, limit=10)
    assert ([m.id for m in memories], after) == ([hostile], None)
    assert memories[0].tags == [HOSTILE, "plain"]
    assert cube.store.count_matching(BrowseFilter(tag=HOSTILE)) == 1
    assert cube.store.count_matching(BrowseFilter(tag="plain")) == 2
    assert cube.store.count_matching(BrowseFilter(tag="' OR 1=1 --")) == 0
    assert HOSTILE in cube.store.facets()["tags"] and HOSTILE in cube.store.roles_and_tags()[1]


def test_facets_and_completions_list_what_live_memories_use_in_byte_order(cube: Cube) -> None:
    add_one(cube, new("one", "fact", role="alice", tags=["zeta", "Alpha"]))
    add_one(cube, new("two", "preference", role="Zed", tags=["beta", "zeta"]))
    add_one(cube, new("three", "event", tags=["émigré"]))
    archived = add_one(cube, new("four", "goal", role="bob", tags=["archived-tag"], state="active"))
    cube.store.set_status([archived], to="archived", allowed_from=("active",), op="archive", client="t")
    deleted = add_one(cube, new("five", "task", role="carol", tags=["gone"], state="todo"))
    cube.store.set_status([deleted], to="deleted", allowed_from=("active",), op="delete", client="t")
    assert cube.store.facets() == {
        "types": ["event", "fact", "goal", "preference"],
        "roles": ["Zed", "alice", "bob"],
        "tags": ["Alpha", "archived-tag", "beta", "zeta", "émigré"],
    }
    assert cube.store.roles_and_tags() == (["Zed", "alice", "bob"], ["Alpha", "archived-tag", "beta", "zeta", "émigré"])


def test_goals_and_tasks_open_ones_first(cube: Cube) -> None:
    goal_a = add_one(cube, new("Run a marathon.", "goal", state="active"))
    goal_b = add_one(cube, new("Learn Rust.", "goal", state="achieved"))
    done = add_one(cube, new("File the taxes.", "task", state="done", due_at="2026-04-01T00:00:00Z"))
    later = add_one(cube, new("Book the venue.", "task", state="todo", due_at="2026-06-01T00:00:00Z", role="work"))
    undated = add_one(cube, new("Tidy the shed.", "task", state="todo", role="home"))
    blocked = add_one(cube, new("Renew the visa.", "task", state="blocked", due_at="2026-05-01T00:00:00Z"))
    add_one(cube, new("A plain fact.", "fact"))
    everything = ("todo", "in_progress", "blocked", "done", "active", "achieved", "dropped")
    assert [m.id for m in cube.store.goals_and_tasks(everything, None)] == [goal_a, goal_b, blocked, later, undated, done]
    assert [m.id for m in cube.store.goals_and_tasks(("todo",), "work")] == [later]
    assert [m.id for m in cube.store.goals_and_tasks(("todo", "active"), "home")] == [goal_a, undated]
    assert cube.store.goals_and_tasks((), None) == []


def test_live_versions_are_those_of_active_memories(cube: Cube) -> None:
    first = add_one(cube, new("Version me."))
    second = add_one(cube, new("Archive me."))
    cube.store.update(first, {"text": "Version me again."}, vector=None, model_id=None, client="t")
    cube.store.set_status([second], to="archived", allowed_from=("active",), op="archive", client="t")
    third = add_one(cube, new("Leave me."))
    assert cube.store.live_versions() == {first: 2, third: 1}


def test_profile_sections(cube: Cube) -> None:
    goal_hi = add_one(cube, new("Run a marathon.", "goal", state="active", importance=0.9))
    goal_lo = add_one(cube, new("Read more.", "goal", state="active", importance=0.3))
    add_one(cube, new("Learn Rust.", "goal", state="achieved"))
    late = add_one(cube, new("Book the venue.", "task", state="todo", due_at="2026-06-10T00:00:00Z", role="work"))
    blocked = add_one(cube, new("Renew the visa.", "task", state="blocked"))
    busy = add_one(cube, new("Paint the fence.", "task", state="in_progress", due_at="2026-06-01T00:00:00Z", role="home"))
    undated = add_one(cube, new("Tidy the shed.", "task", state="todo"))
    early = add_one(cube, new("Call the bank.", "task", state="todo", due_at="2026-05-01T00:00:00Z"))
    soon = add_one(cube, new("Dentist appointment.", "event", occurred_at="2026-05-15T09:00:00Z"))
    sooner = add_one(cube, new("Concert with Ana.", "event", occurred_at="2026-05-12T20:00:00Z"))
    add_one(cube, new("Trip to Oslo.", "event", occurred_at="2026-05-25T08:00:00Z"))  # past the horizon
    add_one(cube, new("Last week's dinner.", "event", occurred_at="2026-05-01T19:00:00Z"))  # past
    add_one(cube, new("Meeting prep.", "task", state="dropped", occurred_at="2026-05-13T09:00:00Z"))  # a task: not upcoming
    general = add_one(cube, new("Likes green tea.", "preference"))
    at_work = add_one(cube, new("Prefers short meetings.", "preference", role="work"))
    at_home = add_one(cube, new("Prefers quiet evenings.", "preference", role="home"))
    finished = add_one(cube, new("Fix the bike.", "task", state="done"))
    old_done = add_one(cube, new("Sort the photos.", "task", state="done"))
    set_times(cube, old_done, updated_at="2025-01-01T00:00:00Z")
    popular = add_one(cube, new("Ana's birthday is in June."))
    plain = add_one(cube, new("The flat has two rooms."))
    [popular_row] = cube.store.row_ids_of([popular])
    cube.store.add_access({popular_row: 5})
    cube.store.add_feedback(blocked, FeedbackEntry(at="2026-05-02T10:00:00Z", tried="the embassy", result="closed"), client="t")

    times = {"now": "2026-05-10T00:00:00Z", "horizon": "2026-05-20T00:00:00Z", "done_since": "2026-01-01T00:00:00Z"}
    rows = cube.store.profile_sections(role=None, top_facts=5, **times)
    assert [m.id for m in rows.goals] == [goal_hi, goal_lo]
    assert [m.id for m in rows.open_tasks] == [blocked, busy, early, late, undated]
    assert [(f.tried, f.result) for f in rows.open_tasks[0].feedback] == [("the embassy", "closed")]
    assert [m.id for m in rows.upcoming] == [sooner, soon]
    assert [m.id for m in rows.preferences] == [general, at_home, at_work]
    assert [m.id for m in rows.done] == [finished]
    assert [m.id for m in rows.facts] == [popular, plain]

    work = cube.store.profile_sections(role="work", top_facts=1, **times)
    assert [m.id for m in work.open_tasks] == [blocked, early, late, undated]
    assert [m.id for m in work.preferences] == [general, at_work]
    assert [m.id for m in work.facts] == [popular]


def test_client_activity_recent_changes_and_all_versions(cube: Cube) -> None:
    first = add_one(cube, new("First."), client="alice")
    second = add_one(cube, new("Second."), client="alice")
    third = add_one(cube, new("Third."), client="bob")
    cube.store.update(third, {"text": "Third, edited."}, vector=None, model_id=None, client="bob")
    for memory_id, version, at in ((first, 1, day(1)), (second, 1, day(3)), (third, 1, day(2)), (third, 2, day(4))):
        run_sql(cube, "UPDATE memory_versions SET at = ? WHERE memory_id = ? AND version = ?", [at, memory_id, version])
    assert cube.store.client_activity() == [
        {"client": "bob", "op": "update", "count": 1, "last": day(4)},
        {"client": "alice", "op": "add", "count": 2, "last": day(3)},
        {"client": "bob", "op": "add", "count": 1, "last": day(2)},
    ]
    assert cube.store.recent_changes(3) == [
        {"memory_id": third, "version": 2, "op": "update", "at": day(4), "client": "bob"},
        {"memory_id": third, "version": 1, "op": "add", "at": day(2), "client": "bob"},
        {"memory_id": second, "version": 1, "op": "add", "at": day(3), "client": "alice"},
    ]
    versions = list(cube.store.all_versions())
    assert [(m, v["version"], v["op"]) for m, v in versions] == [
        (first, 1, "add"),
        (second, 1, "add"),
        (third, 1, "add"),
        (third, 2, "update"),
    ]
    assert [v for m, v in versions if m == third] == cube.store.history(third)
    assert versions[3][1]["changes"]["text"] == {"old": "Third.", "new": "Third, edited."}


def test_denials_are_cut_and_only_the_newest_kept(cube: Cube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cube_store, "MAX_DENIALS", 3)
    monkeypatch.setattr(read_rules, "MAX_DENIALS", 3)
    for n in range(5):
        cube.store.record_denial(client=f"client-{n}", action=f"memory_add {n}", need="write")
    cube.store.record_denial(client="x" * 500, action="a" * 500, need="n" * 500)
    cube.store.record_denial(client=None, action=HOSTILE, need="read")
    kept = cube.store.denials()
    assert [(d["client"], d["action"], d["need"]) for d in kept] == [
        (None, HOSTILE, "read"),
        ("x" * 200, "a" * 200, "n" * 200),
        ("client-4", "memory_add 4", "write"),
    ]
    assert all(d["at"].endswith("Z") for d in kept)
    assert [d["client"] for d in cube.store.denials(limit=1)] == [None]


def test_saved_settings_are_read_back(cube: Cube) -> None:
    cube.store.save_meta("entity_aliases", '{"choices": []}')
    assert cube.store.meta("entity_aliases") == '{"choices": []}'
    cube.store.save_meta("entity_aliases", HOSTILE)
    assert cube.store.meta("entity_aliases") == HOSTILE
    assert cube.store.meta("never_set") is None


def test_entity_mentions_of_live_memories(cube: Cube) -> None:
    leo = add_one(cube, new("Leo met Ana at Acme.", entities=["Leo", "Ana", "Acme"]))
    ana = add_one(cube, new("Ana moved to Porto.", entities=["Ana", "Porto"]))
    archived = add_one(cube, new("Leo left Acme.", entities=["Leo", "Acme"]))
    cube.store.set_status([archived], to="archived", allowed_from=("active",), op="archive", client="t")
    deleted = add_one(cube, new("Zoe visited.", entities=["Zoe"]))
    cube.store.set_status([deleted], to="deleted", allowed_from=("active",), op="delete", client="t")
    expected = [
        ("acme", "Acme", leo),
        ("acme", "Acme", archived),
        ("ana", "Ana", leo),
        ("ana", "Ana", ana),
        ("leo", "Leo", leo),
        ("leo", "Leo", archived),
        ("porto", "Porto", ana),
    ]
    assert [tuple(r) for r in cube.store.entity_mentions()] == expected
    assert [tuple(r) for r in cube.store.entity_mentions(include_deleted=True)] == expected  # a delete drops its entities


def test_access_counts_add_up(cube: Cube) -> None:
    first = add_one(cube, new("Read me often."))
    second = add_one(cube, new("Read me once."))
    # row_ids_of answers by memory id (as SQLite's index reads them), not in the order asked: two ids
    # made in the same millisecond may sort either way (CI once got the second one first).
    rows = dict(zip(sorted([first, second]), cube.store.row_ids_of([first, second]), strict=True))
    cube.store.add_access({rows[first]: 2, rows[second]: 1})
    cube.store.add_access({rows[first]: 3})
    cube.store.add_access({})
    a, b = cube.store.get_many([first, second])
    assert (a.access_count, b.access_count) == (5, 1)
    assert a.last_access is not None and a.last_access.endswith("Z")
    assert a.version == 1  # reading is not a change


def test_stale_embeddings_after_forget_embedding_models(cube: Cube) -> None:
    ids = [add_one(cube, new(f"embedded {n}", vector=_vector(n))) for n in range(3)]
    bare = add_one(cube, new("never embedded"))
    rows = cube.store.row_ids_of(ids + [bare])
    by_id = dict(zip(sorted(ids + [bare]), rows, strict=True))
    assert cube.store.stale_embeddings(MODEL, 10) == [(by_id[bare], "never embedded")]
    cube.store.set_status([ids[1]], to="deleted", allowed_from=("active",), op="delete", client="t")
    cube.store.forget_embedding_models()
    stale = cube.store.stale_embeddings(MODEL, 10)
    assert stale == sorted([(by_id[ids[0]], "embedded 0"), (by_id[ids[2]], "embedded 2"), (by_id[bare], "never embedded")])
    assert cube.store.stale_embeddings(MODEL, 2) == stale[:2]
    cube.store.store_vectors([(by_id[ids[0]], _vector(7))], "model-2")
    assert cube.store.stale_embeddings("model-2", 10) == stale[1:]
    assert len(cube.store.stale_embeddings(MODEL, 10)) == 3  # another model's vector is stale to this one


def test_the_vector_table_follows_the_embedding_model(cube: Cube) -> None:
    assert cube.store.ensure_vector_table(MODEL, 384) is False
    assert (cube.store.meta("embedding_model"), cube.store.meta("embedding_dim")) == (MODEL, "384")
    assert cube.store.ensure_vector_table(MODEL, 384) is False
    assert cube.store.ensure_vector_table("model-2", 384) is True
    assert cube.store.meta("embedding_model") == "model-2"
    if cube.engine == "sqlite":
        assert cube.store.ensure_vector_table("wide-model", 512) is True
        assert (cube.store.meta("embedding_model"), cube.store.meta("embedding_dim")) == ("wide-model", "512")
    else:
        with pytest.raises(InvalidInput, match="384-dimensional") as refused:
            cube.store.ensure_vector_table("wide-model", 512)
        assert "\n" not in str(refused.value) and "512" in str(refused.value)
        assert (cube.store.meta("embedding_model"), cube.store.meta("embedding_dim")) == ("model-2", "384")


@pytest.mark.postgres
def test_reads_see_only_their_own_cube(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_rules, "MAX_DENIALS", 2)
    with _postgres(postgres_database, name="alice") as alice, _postgres(postgres_database, name="bob") as bob:
        mine = add_one(alice, new("Alice's note.", "task", tags=["shared-tag"], role="r1", entities=["Ana"], state="todo"))
        theirs = add_one(bob, new("Bob's note.", "task", tags=["shared-tag"], role="r2", entities=["Ben"], state="todo"))
        for n in range(3):
            alice.store.record_denial(client=f"a{n}", action="x", need="write")
        bob.store.record_denial(client="b0", action="x", need="write")
        alice.store.save_meta("k", "alice")
        assert bob.store.meta("k") is None
        assert [m.id for m in bob.store.recent()] == [theirs]
        assert [m.id for m in bob.store.iter_all()] == [theirs]
        assert [m.id for m in bob.store.page(BrowseFilter(tag="shared-tag"), after=None, limit=10)[0]] == [theirs]
        assert bob.store.count_matching(BrowseFilter()) == 1
        assert bob.store.facets()["roles"] == ["r2"] and bob.store.roles_and_tags()[0] == ["r2"]
        assert [m.id for m in bob.store.goals_and_tasks(("todo",), None)] == [theirs]
        assert bob.store.live_versions() == {theirs: 1}
        assert bob.store.get_by_row_ids(alice.store.row_ids_of([mine])) == {}
        assert bob.store.row_ids_of([mine]) == []
        assert [c["memory_id"] for c in bob.store.recent_changes()] == [theirs]
        assert [m for m, _ in bob.store.all_versions()] == [theirs]
        assert [c["client"] for c in bob.store.client_activity()] == ["test"]
        assert [r[0] for r in bob.store.entity_mentions()] == ["ben"]
        assert [d["client"] for d in bob.store.denials()] == ["b0"]
        assert [d["client"] for d in alice.store.denials()] == ["a2", "a1"]
        assert [r for r, _ in bob.store.stale_embeddings("m", 10)] == bob.store.row_ids_of([theirs])
        bob.store.forget_embedding_models()
        bob.store.add_access({alice.store.row_ids_of([mine])[0]: 4})
        assert alice.store.get_many([mine])[0].access_count == 0
        assert alice.store.ensure_vector_table(MODEL, 384) is False and bob.store.meta("embedding_model") is None
