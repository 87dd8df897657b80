"""Retrieval finds what the user meant: context windows, who said what, entities, time words.

Small conversations and notes written for these tests. Each test reads as a statement of
behaviour; they run against the real store (SQLite, FTS5, sqlite-vec) and the real model.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support import ok, raw_db

from memory import SearchQuery
from memory.retrieval.search import embedding_text, speaker_of, vector_query_text
from memory.store.threads import WINDOW

# A chat where the answer ("Yes! Bali, last summer") never repeats the question's words.
TRIP = [
    "Sam: Have you ever tried scuba diving?",
    "Riya: Yes! Bali, last summer. The reefs were unreal.",
    "Sam: That sounds incredible.",
    "Riya: I want to go back next year with my sister.",
]
CHORES = [
    "Sam: I spent the weekend fixing the kitchen sink.",
    "Riya: Did you need a plumber in the end?",
    "Sam: No, a new washer did the trick.",
]


@pytest.fixture
def cube(home):
    return home.cube("retrieval", create=True)


def add_session(cube, session_id: str, lines: list[str], when: str) -> list[str]:
    outcomes = cube.add([{"text": t, "occurred_at": when, "session_id": session_id} for t in lines])
    return [o.id for o in outcomes]


def context_text(cube, memory_id: str) -> str | None:
    with raw_db(cube) as conn:
        row = conn.execute(
            "SELECT c.text FROM memory_context_fts c JOIN memories m ON m.row_id = c.rowid WHERE m.id = ?", (memory_id,)
        ).fetchone()
    return row[0] if row else None


def test_a_turn_is_found_through_the_words_of_its_neighbours(cube):
    trip = add_session(cube, "chat-1", TRIP, "2024-07-01")
    add_session(cube, "chat-2", CHORES, "2024-08-01")
    hits = cube.search(SearchQuery(query="Where did they go scuba diving?", limit=2)).hits
    answer = next(h for h in hits if h.id == trip[1])
    assert "context" in answer.signals and "keyword" not in answer.signals
    # Keyword search on each memory alone cannot see it.
    alone = cube.search(SearchQuery(query="Where did they go scuba diving?", limit=3, signals=("keyword",))).hits
    assert trip[1] not in [h.id for h in alone]


def test_a_context_window_is_the_turn_with_its_neighbours_in_its_session_only(cube):
    trip = add_session(cube, "chat-1", TRIP, "2024-07-01")
    chores = add_session(cube, "chat-2", CHORES, "2024-08-01")
    assert context_text(cube, trip[0]).split("\n") == TRIP[: WINDOW + 1]
    assert context_text(cube, trip[1]).split("\n") == TRIP[: WINDOW + 2]
    assert "sink" not in context_text(cube, trip[-1])  # another session is another thread
    assert context_text(cube, chores[0]).split("\n") == CHORES[: WINDOW + 1]


def test_a_memory_without_a_session_is_its_own_context(cube):
    [note] = [o.id for o in cube.add([{"text": "Alice prefers green tea over coffee", "type": "preference"}])]
    add_session(cube, "chat-1", TRIP, "2024-07-01")
    # Not indexed a second time: its own-text match stands in as its context match.
    assert context_text(cube, note) is None
    [hit] = cube.search(SearchQuery(query="green tea", limit=1, signals=("context",))).hits
    assert hit.id == note and set(hit.signals) == {"context"}
    hits = cube.search(SearchQuery(query="what does Alice like to drink?", limit=3)).hits
    assert hits[0].id == note


def test_a_thread_is_ordered_by_when_things_happened_then_by_insertion(cube):
    # Added out of order: the thread follows occurred_at, not the order of the calls.
    late = cube.add(
        [{"text": "Then we went for dinner at the harbour.", "occurred_at": "2024-05-02T20:00:00Z", "session_id": "day"}]
    )[0].id
    early = cube.add([{"text": "We started with a morning hike.", "occurred_at": "2024-05-02T08:00:00Z", "session_id": "day"}])[
        0
    ].id
    middle = cube.add([{"text": "Lunch was a picnic by the lake.", "occurred_at": "2024-05-02T12:00:00Z", "session_id": "day"}])[
        0
    ].id
    hits = cube.search(SearchQuery(query="picnic by the lake", limit=1)).hits
    assert hits[0].id == middle
    around = cube.context(hits, 1)
    assert [(t.id, t.offset, t.context_of) for t in around] == [(early, -1, middle), (late, 1, middle)]


def test_context_windows_follow_updates_deletes_and_purges(cube):
    trip = add_session(cube, "chat-1", TRIP, "2024-07-01")
    cube.update(trip[0], {"text": "Sam: Have you ever been snorkelling?"})
    assert "snorkelling" in context_text(cube, trip[1]) and "scuba" not in context_text(cube, trip[1])
    found = cube.search(SearchQuery(query="snorkelling", limit=4, signals=("context",))).hits
    assert trip[1] in [h.id for h in found]

    cube.delete([trip[0]])
    assert context_text(cube, trip[0]) is None
    assert "snorkelling" not in context_text(cube, trip[1])
    assert context_text(cube, trip[1]).split("\n") == TRIP[1 : 1 + WINDOW + 1]

    cube.archive([trip[2]])  # archived memories stay in their thread (found with include_archived)
    assert TRIP[2] in context_text(cube, trip[1])

    cube.delete([trip[1]], purge=True)
    assert context_text(cube, trip[2]).split("\n") == [TRIP[2], TRIP[3]]


def test_moving_a_memory_in_time_moves_it_in_its_thread(cube):
    trip = add_session(cube, "chat-1", TRIP, "2024-07-01")
    cube.update(trip[0], {"occurred_at": "2024-07-02"})  # now the last turn of the thread
    assert context_text(cube, trip[0]).split("\n") == [TRIP[2], TRIP[3], TRIP[0]]
    assert context_text(cube, trip[1]).split("\n") == TRIP[1:4]


def test_what_a_speaker_said_ranks_above_what_others_said_about_it(cube):
    said = add_session(
        cube,
        "pets",
        [
            "Bob: My neighbour adopted a kitten last week.",
            "Alice: I adopted a greyhound from the shelter!",
            "Bob: A greyhound, nice. I adopted a kitten years ago.",
        ],
        "2024-03-03",
    )
    hits = cube.search(SearchQuery(query="Which pet did Alice adopt?", limit=3)).hits
    assert hits[0].id == said[1]
    assert "speaker" in hits[0].signals


def test_a_rare_entity_counts_for_more_than_one_every_memory_mentions(cube):
    cube.add(
        [
            {"text": "Dana booked the venue for the offsite", "entities": ["Dana", "Offsite"]},
            {"text": "Dana reviewed the budget", "entities": ["Dana"]},
            {"text": "Dana met Priya about the offsite catering", "entities": ["Dana", "Priya"]},
        ]
    )
    hits = cube.search(SearchQuery(query="Dana and Priya", limit=3, signals=("entity",))).hits
    assert "Priya" in hits[0].text
    assert hits[0].signals["entity"].score > 0
    # Dana is in every memory: naming her says nothing about which one is meant.
    assert all(h.signals.get("entity") is None or h.signals["entity"].score == 0 for h in hits[1:])


def test_the_vector_looks_for_what_and_leaves_who_to_the_entity_signal(cube):
    add_session(cube, "s", ["Maya: I joined a woodworking class", "Ana: So did I, Maya!"], "2024-01-01")
    with cube.store.search_view() as view:
        assert vector_query_text(view, "What class did Maya join?") == "What class did join?"
        assert vector_query_text(view, "What did Maya's sister say?") == "What did sister say?"
        assert vector_query_text(view, "Maya") == "Maya"  # nothing left but the name: keep it
        assert vector_query_text(view, "What did Zoe say?") == "What did Zoe say?"  # unknown here
    assert embedding_text("Maya: I joined a woodworking class") == "I joined a woodworking class"
    assert embedding_text("Remember: buy milk") == "buy milk"
    assert embedding_text("the ratio is 3:2 here") == "the ratio is 3:2 here"
    assert speaker_of("Mary Ann: hello") == "mary ann"
    assert speaker_of("nothing said here") is None


def test_each_hit_says_which_signals_found_it_and_their_scores(cube):
    add_session(cube, "chat-1", TRIP, "2024-07-01")
    [hit] = cube.search(SearchQuery(query="scuba diving", limit=1)).hits
    assert hit.signals["keyword"].rank == 1 and hit.signals["keyword"].score > 0
    assert {"keyword", "context", "vector"} <= set(hit.signals)
    assert -1.0 <= hit.signals["vector"].score <= 1.0


def test_time_words_in_the_query_narrow_the_search_to_when_things_happened(cube):
    cube.add(
        [
            {"text": "Planned the garden: tomatoes and basil", "occurred_at": "2026-11-18"},
            {"text": "Planned the garden layout with raised beds", "occurred_at": "2026-10-05"},
        ]
    )
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    outcome = cube.search(SearchQuery(query="what did I plan for the garden last week?", limit=5), now=now)
    assert outcome.time_applied
    assert [h.text for h in outcome.hits] == ["Planned the garden: tomatoes and basil"]


def test_an_old_cube_gets_context_windows_when_it_is_opened(tmp_path, shared_embedder):
    from memory import MemoryHome
    from memory.store import connection as db
    from memory.store import schema

    path = tmp_path / "cubes" / "old" / "memory.db"
    path.parent.mkdir(parents=True)
    conn = db.connect(path)
    conn.execute("BEGIN IMMEDIATE")
    schema.MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    for i, text in enumerate(TRIP):
        conn.execute(
            "INSERT INTO memories(id, text, type, status, session_id, created_at, updated_at, occurred_at, content_hash, seq) "
            "VALUES (?, ?, 'note', 'active', 'chat-1', '2024-07-01T00:00:00Z', '2024-07-01T00:00:00Z', '2024-07-01T00:00:00Z', ?, 0)",
            (f"mem_old{i}", text, f"hash{i}"),
        )
    conn.execute("COMMIT")
    conn.close()
    cube = MemoryHome(tmp_path, embedder=shared_embedder).cube("old")
    assert cube.stats().schema_version == schema.SCHEMA_VERSION
    assert context_text(cube, "mem_old1").split("\n") == TRIP[: WINDOW + 2]


@pytest.mark.anyio
async def test_memory_search_returns_context_turns_apart_from_the_hits(client):
    await ok(client, "memory_add", memories=[{"text": t, "session_id": "chat-1", "occurred_at": "2024-07-01"} for t in TRIP])
    await ok(client, "memory_add", memories=[{"text": t, "session_id": "chat-2", "occurred_at": "2024-08-01"} for t in CHORES])
    plain = await ok(client, "memory_search", query="scuba diving", limit=1)
    assert plain["context"] == []
    result = await ok(client, "memory_search", query="scuba diving", limit=1, context=1)
    [hit] = result["hits"]
    assert hit["text"] == TRIP[0]
    assert [(t["text"], t["offset"], t["context_of"]) for t in result["context"]] == [(TRIP[1], 1, hit["id"])]
    assert hit["signals"]["keyword"]["rank"] == 1


@pytest.mark.anyio
async def test_memory_add_takes_a_session_for_a_single_memory(client):
    first = (await ok(client, "memory_add", text="Sam: Have you tried the new ramen place?", session_id="s1"))["ids"][0]
    await ok(client, "memory_add", text="Riya: Yes, the miso broth is great.", session_id="s1")
    result = await ok(client, "memory_search", query="ramen place", limit=1, context=1)
    assert result["hits"][0]["id"] == first
    assert [t["text"] for t in result["context"]] == ["Riya: Yes, the miso broth is great."]


def test_searching_a_memory_by_its_exact_text_finds_it_first(cube):
    texts = [f"Round 3 item {i}.2: Ada filed invoice 3-{i}-2 for #project-2" for i in range(1, 40)]
    ids = [o.id for o in cube.add([{"text": t} for t in texts])]
    for i in (1, 2, 20, 38):
        hits = cube.search({"query": texts[i], "limit": 3}).hits
        assert hits[0].id == ids[i] and "exact" in hits[0].signals
