"""The shortcuts that keep a big cube fast, held to the slow, obvious answer on small cases.

- The entity stage reads only the best ``k`` memories linked to the names a query gives
  (rarest name first) instead of every linked memory: its ranking must be the one the whole
  list gives, ties, aliases and filters included.
- The vector mirror reads a cube's vectors in slices: the mirror must hold what a single
  read would, deletions and status changes included.
- A batch's supersession check is one product with the mirror: it must find what a check of
  each memory alone finds.
- A big mirror scans in int8 first and rescores the best exactly: its top k, the cosines it
  gives and their mean and spread must be those of the float scan, after updates, deletions
  and archiving; the first pass must stay within the bound it states.
- A time window reads its memories through an index, not a table scan.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from support import raw_db

from memory import SearchQuery
from memory.entities import query_keys
from memory.retrieval import search as search_module
from memory.store import vector_mirror
from memory.store.int8_scan import Int8Scan


def _reference_entity_ranking(cube, q: SearchQuery, k: int, aliases) -> tuple[list[tuple[int, float]], dict[int, str]]:
    """The entity stage as it was: read every linked searchable memory, rank them all."""
    keys = query_keys(q.query)
    if aliases is not None:
        keys = {m for key in keys for m in (aliases.group(key) if aliases.knows(key) else [key])}
    status = "m.status IN ('active', 'archived')" if q.include_archived else "m.status = 'active'"
    types = f" AND m.type IN ({','.join('?' * len(q.types))})" if q.types else ""
    with raw_db(cube) as conn:
        rows = conn.execute(
            "SELECT e.memory_rowid, e.norm, substr(m.text, 1, length(e.name) + 1) = e.name || ':' "
            f"FROM memory_entities e JOIN memories m ON m.row_id = e.memory_rowid WHERE e.norm IN ({','.join('?' * len(keys))}) "
            f"AND {status}{types} ORDER BY e.norm, e.memory_rowid",
            [*sorted(keys), *(q.types or [])],
        ).fetchall()
        total = max(2, conn.execute(f"SELECT count(*) FROM memories m WHERE {status}").fetchone()[0])
    canon = (lambda n: aliases.canonical(n)) if aliases is not None else (lambda n: n)
    rows = [(r, canon(n), s) for r, n, s in rows]
    df = Counter(n for _, n, _ in rows)
    best: dict[int, float] = {}
    said: dict[int, str] = {}
    for row_id, norm, speaker in rows:
        best[row_id] = max(best.get(row_id, 0.0), max(0.0, math.log(total / df[norm]) / math.log(total)))
        if speaker:
            said[row_id] = norm
    return sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k], said


@pytest.fixture(scope="module")  # its tests only read it
def people(module_home):
    cube = module_home.cube("people", create=True)
    memories = []
    # Alice is in every third memory (a common name), Bob in a few, Carol Jones in two, Dave once.
    for i in range(60):
        names = ["Alice"] if i % 3 == 0 else []
        if i % 10 == 1:
            names.append("Bob")
        text = f"{'Alice: ' if i % 6 == 0 else ''}entry {i} about the garden and the {['river', 'kiln', 'orchard'][i % 3]}"
        memories.append({"text": text, "entities": names, "type": "event" if i % 2 else "note"})
    memories += [
        {"text": "Carol Jones: the kiln fired at last", "entities": ["Carol Jones"]},
        {"text": "Carol told Alice about the kiln", "entities": ["Carol Jones", "Alice"]},
        {"text": "Dave fixed the orchard gate with Bob", "entities": ["Dave", "Bob"]},
    ]
    ids = [o.id for o in cube.add(memories)]
    cube.archive(ids[3:9])
    return cube


@pytest.mark.parametrize(
    "query",
    [
        "what did Alice say about the garden",
        "Bob and Alice at the orchard",
        "Carol and the kiln",  # a short form of Carol Jones, through the alias table
        "Dave, Bob, Alice and Carol",
        "nobody named here",
    ],
)
@pytest.mark.parametrize("k", [1, 3, 8, 100])
@pytest.mark.parametrize("archived", [False, True])
def test_the_bounded_entity_stage_ranks_as_the_whole_list_does(people, query, k, archived):
    aliases = people.aliases()
    for types in (None, ["event"]):
        q = SearchQuery(query=query, include_archived=archived, types=types)
        expected, expected_said = _reference_entity_ranking(people, q, k, aliases)
        with raw_db(people) as conn:
            every_row = [r for (r,) in conn.execute("SELECT row_id FROM memories")]
        with people.store.search_view() as view:
            found = search_module.entity_matches(view, q, k, aliases)
            said, _ = found.candidate_links(view, q, every_row)
        assert found.ranked == expected
        assert said == expected_said


@pytest.mark.parametrize("archived", [False, True])
def test_each_names_first_memories_come_from_the_index_in_row_order(people, monkeypatch, archived):
    """The entity stage's read of a level's first memories, one ordered read per key, gives the one-query answer."""
    from memory.store import search_reads

    keys_cases = [["alice"], ["alice", "bob"], ["bob", "carol jones", "dave"], ["alice", "nobody"], ["nobody"]]
    with raw_db(people) as conn:
        alice_rows = [r for (r,) in conn.execute("SELECT memory_rowid FROM memory_entities WHERE norm = 'alice' ORDER BY 1")]
    for types in (None, ["event"]):
        q = SearchQuery(query="x", include_archived=archived, types=types)
        for keys in keys_cases:
            for exclude in ([], alice_rows[:3]):
                for k in (1, 4, 100):
                    with people.store.search_view() as view:
                        per_key = view.entity_first_rows(q, keys, k, exclude=exclude)
                        monkeypatch.setattr(search_reads, "ONE_READ_PER_KEY_UP_TO", 0)
                        one_read = view.entity_first_rows(q, keys, k, exclude=exclude)
                        monkeypatch.setattr(search_reads, "ONE_READ_PER_KEY_UP_TO", 16)
                    assert per_key == one_read, (keys, exclude, k, types)
                    assert len(set(per_key)) == len(per_key) and per_key == sorted(per_key)
    # Each key's read walks the index in row order and stops: no sort of every linked memory.
    with raw_db(people) as conn:
        plan = " / ".join(
            row[-1]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT e.memory_rowid FROM memory_entities e CROSS JOIN memories m "
                "ON m.row_id = e.memory_rowid WHERE e.norm = ? AND m.status = 'active' ORDER BY e.memory_rowid LIMIT 5",
                ["alice"],
            )
        )
    assert "memory_entities_norm_row" in plan and "ORDER BY" not in plan, plan


@pytest.mark.parametrize("query", ["what did Alice say about the garden", "Carol and the kiln", "Dave, Bob, Alice and Carol"])
@pytest.mark.parametrize("archived", [False, True])
def test_the_entity_links_of_any_candidates_match_the_whole_list(people, query, archived):
    """``candidate_links`` gives each memory it is asked about the specificity the whole-list ranking gives it."""
    aliases = people.aliases()
    q = SearchQuery(query=query, include_archived=archived)
    expected, _ = _reference_entity_ranking(people, q, 10**6, aliases)
    with raw_db(people) as conn:
        every_row = [r for (r,) in conn.execute("SELECT row_id FROM memories ORDER BY row_id DESC")]
    with people.store.search_view() as view:
        found = search_module.entity_matches(view, q, 3, aliases)
        assert found.candidate_links(view, q, every_row)[1] == expected
        assert found.candidate_links(view, q, every_row[:7])[1] == [item for item in expected if item[0] in every_row[:7]]


def test_a_memory_found_by_its_words_gets_the_entity_bonus_whatever_its_age(home, monkeypatch):
    """The entity stage reads only a common name's first memories; a newer one found otherwise still gets its bonus."""
    cube = home.cube("ages", create=True)
    cube.add([{"text": f"Alice watered the ferns on day {i}", "entities": ["Alice"]} for i in range(30)])
    cube.add([{"text": f"The tram timetable changed on line {i}"} for i in range(30)])
    [newest] = cube.add([{"text": "Alice repaired the lighthouse lamp", "entities": ["Alice"]}])
    monkeypatch.setattr(search_module, "MIN_POOL", 5)  # the entity stage reads Alice's first 5 memories
    hits = cube.search(SearchQuery(query="Alice and the lighthouse lamp", limit=1, include_weak=True)).hits
    assert hits[0].id == newest.id
    ferns = cube.search(SearchQuery(query="Alice and the ferns", limit=1, include_weak=True)).hits
    assert "entity" in hits[0].signals and hits[0].signals["entity"].score == ferns[0].signals["entity"].score > 0


def test_a_search_gives_the_speaker_bonus_to_what_the_named_person_said(people):
    hits = people.search(SearchQuery(query="what did Alice say about the garden", limit=10, include_weak=True)).hits
    speakers = [h for h in hits if "speaker" in h.signals]
    assert speakers and all(h.text.startswith("Alice: ") for h in speakers)


def test_the_mirror_read_in_slices_holds_what_one_read_holds(home, shared_embedder, monkeypatch):
    monkeypatch.setattr(vector_mirror, "MIRROR_READ_ROWS", 3)
    cube = home.cube("slices", create=True)
    ids = [o.id for o in cube.add([{"text": f"slice {i}: the {w} by the water"} for i, w in enumerate("abcdefghijk")])]
    cube.delete([ids[1], ids[6]])
    cube.archive([ids[4]])
    fresh = vector_mirror.VectorMirror()
    cube.store.sync_mirror(fresh)  # a whole reload, three rows at a time
    cube.add([{"text": f"after {i}: lanterns on the pier"} for i in range(5)])
    cube.update(ids[2], {"text": "slice 2 rewritten: the lighthouse keeper"})
    cube.store.sync_mirror(fresh)  # catching up, three rows at a time
    for query in ("lighthouse", "lanterns", "slice 9 water"):
        vector = shared_embedder.embed_one(query)
        for archived in (False, True):
            mirror = fresh.search(vector, 20, include_archived=archived)
            sqlite = cube.store.nearest(vector, 20, include_archived=archived)
            assert [r for r, _ in mirror] == [r for r, _ in sqlite], query
            assert [c for _, c in mirror] == pytest.approx([c for _, c in sqlite], abs=1e-5)
    assert len(fresh) == 11 - 2 + 5


def test_a_batch_is_judged_for_supersession_as_each_memory_alone_is(home):
    old = [
        {"text": "My favourite tea is jasmine green tea", "type": "preference"},
        {"text": "Sam works as a nurse at the city hospital", "type": "fact"},
        {"text": "The team stand-up is at 9:30 every morning", "type": "fact"},
    ]
    new = [
        {"text": "My favourite tea is now rooibos, not jasmine", "type": "preference"},
        {"text": "Sam now works as a paramedic instead of a nurse", "type": "fact"},
        {"text": "The team stand-up is at 9:30 every morning", "type": "fact"},  # the same text: a duplicate
        {"text": "I like long walks by the sea", "type": "preference"},
    ]
    one_by_one = home.cube("alone", create=True)
    one_by_one.add(old)
    alone = [one_by_one.add([item])[0] for item in new]
    batched = home.cube("batch", create=True)
    batched.add(old)
    together = batched.add(new)
    assert [(o.created, [s.reason for s in o.superseded], o.restated is not None) for o in together] == [
        (o.created, [s.reason for s in o.superseded], o.restated is not None) for o in alone
    ]
    assert one_by_one.stats().archived == batched.stats().archived


def _fresh_table(cube):
    from memory.retrieval.aliases import build

    return build(cube.store.entity_keys(), cube.alias_choices())


def test_the_alias_table_followed_change_by_change_equals_one_built_from_scratch(home):
    cube = home.cube("aliases", create=True)
    steps = []
    first = cube.add([{"text": "Lunch with Marco Bianchi", "entities": ["Marco Bianchi"]}])[0].id
    steps.append("add a full name")
    assert cube.aliases().canonical("marco") == "marco bianchi"
    rossi = cube.add([{"text": "Call Marco Rossi about the boat", "entities": ["Marco Rossi"]}])[0].id
    steps.append("a second Marco makes the first name ambiguous")
    assert cube.aliases().canonical("marco") == "marco"
    cube.add([{"text": "The weather was fine"}])  # names nobody: the table stands as it was
    assert cube.aliases().canonical("marco") == "marco"
    cube.delete([rossi])
    steps.append("delete the only memory naming Marco Rossi")
    assert cube.aliases().canonical("marco") == "marco bianchi"
    other = cube.add([{"text": "Marco Rossi again", "entities": ["Marco Rossi"]}])[0].id
    assert cube.aliases().canonical("marco") == "marco"
    cube.update(other, {"entities": ["Luca Verdi"], "text": "Luca Verdi again"})
    steps.append("an update takes the name away")
    assert cube.aliases().canonical("marco") == "marco bianchi"
    assert cube.aliases().canonical("luca") == "luca verdi"
    cube.delete([first], purge=True)
    steps.append("a purge")
    assert cube.aliases().canonical("marco") == "marco"
    cube.add([{"text": "Bob fixed the gate", "entities": ["Bob"]}])
    cube.alias("Bob", "Luca Verdi")
    steps.append("a client's merge")
    assert cube.aliases().canonical("bob") == "luca verdi"
    for probe in ("marco", "luca", "verdi", "bianchi", "rossi", "bob"):
        assert cube.aliases().canonical(probe) == _fresh_table(cube).canonical(probe), (probe, steps)


def test_the_int8_first_pass_stays_within_its_bound():
    rng = np.random.default_rng(11)
    rows = rng.standard_normal((3000, 384)).astype(np.float32)
    rows[:, 17] *= 12  # a dimension far larger than the rest, as real embeddings have
    rows[:5] = 0.0
    rows[:5, 3] = 1.0  # rows with one non-zero value
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows[7] = 0.0  # an all-zero vector (an archive can bring one): exact, and no cause to loosen the bound
    scan = Int8Scan(rows)
    for i in range(60):
        query = rng.standard_normal(384).astype(np.float32)
        query[i % 384] *= 1 + i  # queries with one ever larger value
        query /= np.linalg.norm(query)
        error = np.abs(scan.scores(query) - rows @ query)
        assert error.max() <= scan.bound(query)
        assert scan.bound(query) < 0.2  # a bound this loose would rescore much of the cube


def _exact_and_segmented(monkeypatch, cube, segment_rows: int):
    """The cube's vectors in two fresh mirrors: float scan only, and int8 segments of ``segment_rows``."""
    monkeypatch.setattr(vector_mirror, "SEGMENT_ROWS", 10**9)
    exact = vector_mirror.VectorMirror()
    cube.store.sync_mirror(exact)
    exact.cosines(np.ones(exact._matrix.shape[1], dtype=np.float32))
    monkeypatch.setattr(vector_mirror, "SEGMENT_ROWS", segment_rows)
    segmented = vector_mirror.VectorMirror()
    cube.store.sync_mirror(segmented)
    return exact, segmented


@pytest.mark.slow  # a cube large enough for int8 segments (26 s loaded); .ci/run runs it
def test_the_int8_segments_give_the_exact_scans_answers(home, shared_embedder, monkeypatch):
    cube = home.cube("segments", create=True)
    words = ["harbour", "violin", "orchard", "glacier", "lantern", "falcon", "tulip", "compass", "meadow", "river"]
    ids = [
        o.id
        for o in cube.add(
            [{"text": f"note {i}: the {words[i % 10]} near the {words[(i * 7) % 10]}, day {i % 13}"} for i in range(150)]
        )
    ]
    exact, segmented = _exact_and_segmented(monkeypatch, cube, 32)
    queries = [shared_embedder.embed_one(q) for q in ("a violin in the orchard", "glacier lantern", "day 5 river", "compass")]

    def same_answers() -> None:
        cube.store.sync_mirror(exact)
        for _ in range(6):  # one segment is sealed per scan
            cube.store.sync_mirror(segmented)
            segmented.cosines(queries[0])
        assert segmented._segments  # the first pass is in use
        for query in queries:
            for archived in (False, True):
                want = exact.cosines(query, include_archived=archived)
                got = segmented.cosines(query, include_archived=archived)
                assert got.errors is not None and got.errors.max() > 0
                top_want, top_got = want.top(25), got.top(25)
                assert [r for r, _ in top_got] == [r for r, _ in top_want]
                assert [c for _, c in top_got] == pytest.approx([c for _, c in top_want], abs=1e-5)
                assert (got.mean, got.std) == pytest.approx((want.mean, want.std), abs=1e-5)
                some = [int(r) for r in want.row_ids[::7]]
                assert got.of(some) == pytest.approx(want.of(some), abs=1e-5)
            allowed = np.array(sorted(int(r) for r in exact.cosines(query).row_ids[::3]), dtype=np.int64)
            filtered_want, filtered_got = exact.search(query, 10, allowed=allowed), segmented.search(query, 10, allowed=allowed)
            assert [r for r, _ in filtered_got] == [r for r, _ in filtered_want]
            assert [c for _, c in filtered_got] == pytest.approx([c for _, c in filtered_want], abs=1e-5)

    same_answers()
    # Rewritten rows inside sealed segments, removed rows (kept as dead rows), archived rows, new rows.
    cube.update(ids[3], {"text": "a violin lesson in the orchard, rewritten"})
    cube.update(ids[40], {"text": "the compass points to the glacier"})
    cube.delete([ids[5], ids[70]])
    cube.archive([ids[9], ids[100]])
    cube.add([{"text": f"later {i}: lanterns and a falcon over the meadow"} for i in range(20)])
    same_answers()
    assert len(segmented) == len(exact) == 150 - 2 + 20
    # Enough removals compact the matrix: the segments are rebuilt over the new rows.
    cube.delete(ids[100:150])
    same_answers()
    assert len(segmented) == len(exact)


def test_a_time_window_reads_its_memories_through_the_index(home):
    cube = home.cube("window", create=True)
    cube.add([{"text": f"trip {i} to the coast", "occurred_at": f"2024-{1 + i % 12:02d}-10T09:00:00Z"} for i in range(48)])
    cube.add([{"text": "renew the passport", "type": "task", "due_at": "2024-05-20T00:00:00Z"}])
    q = SearchQuery(query="trip to the coast", since="2024-05-01", until="2024-05-31", limit=20)
    hits = cube.search(q).hits
    assert {h.text for h in hits} == {f"trip {i} to the coast" for i in range(4, 48, 12)} | {"renew the passport"}
    with raw_db(cube) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT row_id FROM memories m "
            "WHERE coalesce(m.occurred_at, m.due_at) >= ? AND coalesce(m.occurred_at, m.due_at) <= ?",
            ("2024-05-01", "2024-05-31"),
        ).fetchall()
    assert any("memories_when" in row[-1] for row in plan), plan


@pytest.mark.slow  # a cube large enough for the filter paths (24 s loaded); .ci/run runs it
def test_a_selective_filter_ranks_its_own_memories_to_the_same_answer(home):
    """Filters that keep few memories skip ranking the whole index first: same matches, same order."""
    cube = home.cube("few", create=True)
    cube.add(
        [
            {
                "text": f"trip {i}: a walk along the {('coast', 'river', 'ridge')[i % 3]} path",
                "occurred_at": f"20{10 + i % 12}-03-05",
            }
            for i in range(240)
        ]
    )
    # One year (the whole index's best would fail it), three, eleven of twelve (they would pass it), none.
    for window in (
        ("2015-01-01", "2015-12-31"),
        ("2010-01-01", "2012-12-31"),
        ("2010-01-01", "2020-12-31"),
        ("2030-01-01", "2030-12-31"),
    ):
        q = SearchQuery(query="a walk along the coast", since=window[0], until=window[1], limit=10)
        for table in ("memory_fts", "memory_context_fts"):
            with cube.store.search_view() as view:
                assert view.filtered_row_ids(q) is not None
                whole_index_first = search_module.keyword_candidates(view, q, 8, table=table)
                only_the_few = search_module.keyword_candidates(view, q, 8, table=table, few=True)
            assert [(r, t) for r, _, t in only_the_few] == [(r, t) for r, _, t in whole_index_first], (window, table)
            # The whole index's path reads its scores back through JSON: the last digit may differ.
            assert [s for _, s, _ in only_the_few] == pytest.approx([s for _, s, _ in whole_index_first], rel=1e-12)
            if window[0] != "2030-01-01":
                assert only_the_few  # the window has matches


def test_entity_counts_from_the_index_alone_match_the_join(home):
    """Counting a name's memories from the entity index (less the archived ones) gives what joining each memory gives."""
    cube = home.cube("counts", create=True)
    ids = [
        o.id
        for o in cube.add(
            [{"text": f"visit {i}", "entities": ["Mara"] + (["Teo"] if i % 4 == 0 else [])} for i in range(40)]
            + [{"text": "Teo alone", "entities": ["Teo"]}]
        )
    ]
    cube.archive(ids[:6])  # fewer archived than rows to count: the index path
    cube.delete(ids[10:13])
    cube.restore(ids[:2])
    cube.update(ids[20], {"entities": ["Teo"]})

    def joined(q: SearchQuery, keys: list[str]) -> dict[str, int]:
        status = "m.status IN ('active', 'archived')" if q.include_archived else "m.status = 'active'"
        with raw_db(cube) as conn:
            rows = conn.execute(
                "SELECT e.norm, count(*) FROM memory_entities e JOIN memories m ON m.row_id = e.memory_rowid "
                f"WHERE e.norm IN ({','.join('?' * len(keys))}) AND {status} GROUP BY e.norm",
                keys,
            ).fetchall()
        return dict(rows)

    for archived in (False, True):
        q = SearchQuery(query="Mara and Teo", include_archived=archived)
        for keys in (["mara"], ["teo"], ["mara", "teo"], ["nobody"]):
            with cube.store.search_view() as view:
                counts, _ = view.entity_counts(q, keys)
                assert counts == joined(q, keys), (archived, keys)
                index_alone = view._unfiltered_entity_counts(q, keys)
            if keys == ["mara"]:
                assert index_alone == counts  # 4 archived < 37 rows: answered from the index


def test_the_status_counts_follow_every_change(home, tmp_path):
    """The per-status counts the triggers keep equal a count of the rows after every kind of change."""
    from memory.io.archive import export_cube, import_archive

    cube = home.cube("tally", create=True)

    def counted() -> dict[str, int]:
        with raw_db(cube) as conn:
            rows = dict(conn.execute("SELECT status, count(*) FROM memories GROUP BY status").fetchall())
        return {s: rows.get(s, 0) for s in ("active", "archived", "deleted")}

    def kept() -> dict[str, int]:
        stats = cube.stats()
        with cube.store.search_view() as view:
            assert view.searchable_count(False) == stats.active
            assert view.searchable_count(True) == stats.active + stats.archived
        return {"active": stats.active, "archived": stats.archived, "deleted": stats.deleted}

    ids = [o.id for o in cube.add([{"text": f"tally note {i} on the {['pier', 'mill'][i % 2]}"} for i in range(12)])]
    assert kept() == counted() == {"active": 12, "archived": 0, "deleted": 0}
    cube.archive(ids[:3])
    cube.delete(ids[3:5])
    cube.restore(ids[:1])
    cube.update(ids[6], {"text": "tally note 6 rewritten by the river"})
    cube.add([{"text": "My favourite tea is jasmine", "type": "preference"}])
    cube.add([{"text": "My favourite tea is now rooibos, not jasmine", "type": "preference"}])  # supersedes: one archived
    cube.delete(ids[7:8], purge=True)
    cube.delete(ids[1:2], purge=True)  # an archived one, purged
    assert kept() == counted()
    export_cube(cube, tmp_path / "tally.jsonl", include_deleted=True)
    import_archive(home, tmp_path / "tally.jsonl", cube="copy", graph=False)
    cube = home.cube("copy")
    assert kept() == counted() and sum(counted().values()) > 0
