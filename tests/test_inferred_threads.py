"""Inferred threads: a client that sends no session still writes conversations.

Memories without a ``session_id`` that one client dates to the same day form a thread, so
a turn is found through what was said around it, as in a session. Small conversations
written for these tests; the real store (SQLite, FTS5, sqlite-vec) and the real model.
"""

from __future__ import annotations

import pytest
from support import raw_db

from memory import SearchQuery
from memory.store import schema
from memory.store.threads import WINDOW

# The answer ("Yes! Bali, last summer") never repeats the question's words.
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
    return home.cube("inferred", create=True)


def add_turns(cube, lines: list[str], when: str | None, client: str = "chat-app") -> list[str]:
    items = [{"text": t, **({"occurred_at": when} if when else {})} for t in lines]
    return [o.id for o in cube.add(items, client=client)]


def window(cube, memory_id: str) -> list[str] | None:
    with raw_db(cube) as conn:
        row = conn.execute(
            "SELECT c.text FROM memory_context_fts c JOIN memories m ON m.row_id = c.rowid WHERE m.id = ?", (memory_id,)
        ).fetchone()
    return row[0].split("\n") if row else None


def thread_key(cube, memory_id: str) -> str | None:
    with raw_db(cube) as conn:
        return conn.execute("SELECT thread FROM memories WHERE id = ?", (memory_id,)).fetchone()[0]


def test_turns_one_client_dates_to_one_day_share_context_windows(cube):
    trip = add_turns(cube, TRIP, "2024-07-01T10:00:00Z")
    assert window(cube, trip[0]) == TRIP[: WINDOW + 1]
    assert window(cube, trip[1]) == TRIP[: WINDOW + 2]
    assert thread_key(cube, trip[0]) == "d:chat-app:2024-07-01"


def test_a_turn_without_a_session_is_found_through_the_words_of_its_neighbours(cube):
    trip = add_turns(cube, TRIP, "2024-07-01")
    add_turns(cube, CHORES, "2024-08-01")
    hits = cube.search(SearchQuery(query="Where did they go scuba diving?", limit=2)).hits
    answer = next(h for h in hits if h.id == trip[1])
    assert "context" in answer.signals and "keyword" not in answer.signals


def test_another_day_or_another_client_is_another_thread(cube):
    trip = add_turns(cube, TRIP, "2024-07-01")
    chores = add_turns(cube, CHORES, "2024-07-02")
    other = add_turns(cube, ["Kim: Did anyone see the kitchen sink?"], "2024-07-01", client="other-app")
    assert not any("sink" in line for line in window(cube, trip[-1]))
    assert window(cube, chores[0]) == CHORES[: WINDOW + 1]
    assert window(cube, other[0]) == ["Kim: Did anyone see the kitchen sink?"]


def test_a_session_is_its_own_thread_and_a_note_without_a_date_is_in_none(cube):
    trip = add_turns(cube, TRIP, "2024-07-01")
    [in_session] = [
        o.id
        for o in cube.add(
            [{"text": "Sam: Any plans for the weekend?", "occurred_at": "2024-07-01", "session_id": "s1"}], client="chat-app"
        )
    ]
    [note] = add_turns(cube, ["Alice prefers green tea over coffee"], None)
    assert thread_key(cube, in_session) == "s:s1"
    assert window(cube, in_session) == ["Sam: Any plans for the weekend?"]
    assert "Sam: Any plans for the weekend?" not in window(cube, trip[-1])
    assert thread_key(cube, note) is None and window(cube, note) is None  # its own text stands in (memory_fts)


def test_moving_a_memory_to_another_day_takes_it_out_of_the_old_days_windows(cube):
    trip = add_turns(cube, TRIP, "2024-07-01")
    chores = add_turns(cube, CHORES, "2024-07-02")
    cube.update(trip[3], {"occurred_at": "2024-07-02T23:00:00Z"})
    assert TRIP[3] not in window(cube, trip[2])
    assert window(cube, trip[3]) == [*CHORES[1:], TRIP[3]]
    assert TRIP[3] in window(cube, chores[-1])


def test_deletes_and_purges_leave_the_inferred_thread(cube):
    trip = add_turns(cube, TRIP, "2024-07-01")
    cube.delete([trip[0]])
    assert window(cube, trip[0]) is None and TRIP[0] not in window(cube, trip[1])
    cube.delete([trip[1]], purge=True)
    assert window(cube, trip[2]) == [TRIP[2], TRIP[3]]


def test_context_turns_come_from_the_inferred_thread(cube):
    trip = add_turns(cube, TRIP, "2024-07-01")
    hits = cube.search(SearchQuery(query="reefs in Bali", limit=1)).hits
    assert hits[0].id == trip[1]
    around = cube.context(hits, 1)
    assert [(t.id, t.offset) for t in around] == [(trip[0], -1), (trip[2], 1)]


def test_the_doctor_finds_no_drift_and_rebuilds_inferred_windows(cube):
    trip = add_turns(cube, TRIP, "2024-07-01")
    assert cube.store.drift("memory_context_fts") == (0, 0)
    with raw_db(cube) as conn:
        conn.execute("DELETE FROM memory_context_fts")
    assert cube.store.drift("memory_context_fts") == (len(TRIP), 0)
    cube.store.rebuild_context_windows()
    assert cube.store.drift("memory_context_fts") == (0, 0)
    assert window(cube, trip[1]) == TRIP[: WINDOW + 2]


def test_an_old_cube_gets_inferred_threads_when_it_is_opened(tmp_path, shared_embedder):
    from memory import MemoryHome
    from memory.store import connection as db

    path = tmp_path / "cubes" / "old" / "memory.db"
    path.parent.mkdir(parents=True)
    conn = db.connect(path)
    conn.execute("BEGIN IMMEDIATE")
    for version in range(5):
        schema.MIGRATIONS[version](conn)
    conn.execute("PRAGMA user_version = 5")
    for i, text in enumerate(TRIP):
        conn.execute(
            "INSERT INTO memories(id, text, type, status, client, created_at, updated_at, occurred_at, content_hash, seq) "
            "VALUES (?, ?, 'note', 'active', 'chat-app', '2024-07-01T00:00:00Z', '2024-07-01T00:00:00Z', '2024-07-01T09:00:00Z', ?, 0)",
            (f"mem_old{i}", text, f"hash{i}"),
        )
    conn.execute("COMMIT")
    conn.close()
    cube = MemoryHome(tmp_path, embedder=shared_embedder).cube("old")
    assert cube.stats().schema_version == schema.SCHEMA_VERSION
    assert window(cube, "mem_old1") == TRIP[: WINDOW + 2]


# One day of an assistant's saved facts: unrelated statements that share an inferred thread.
FACT_DAY = [
    "Noor keeps bees on the roof, and the roof bees make honey.",
    "Noor's brother repairs vintage motorcycles in a small garage in Tangier and sells the spare parts online.",
    "Noor is learning Portuguese every evening before a long trip to Lisbon and Porto with her cousins in May.",
    "Noor prefers window seats on long flights and always packs a paperback novel for the journey home.",
]
# A short conversation about bees: its windows hold the query's words densely, so the best
# window is one of these, while the best own-text match is Noor's statement.
BEE_TALK = ["Sam: Are there bees up there?", "Riya: Yes, on the roof, two hives.", "Sam: Bees are calm."]
# Other conversations, so that the query's words are rare in the cube (BM25 weighs rare words).
SMALL_TALK = [
    "Kim: The train was late again this morning.",
    "Lea: I finally finished that mystery novel.",
    "Kim: Did the ending surprise you?",
    "Lea: Not really, I guessed the butler early on.",
    "Kim: We should cook dumplings on Friday.",
    "Lea: Only if you bring the chili sauce.",
]


@pytest.mark.parametrize("memory_type", ["fact", "preference", "event"])
def test_a_statement_that_stands_alone_keeps_its_own_match_in_its_thread(cube, memory_type):
    """A fact's (or preference's) context match is the better of its window's and its own text's;
    a chat turn's stays its window's (threads.STANDALONE_TYPES)."""
    for session, turns in (("bees", BEE_TALK), ("small-talk-1", SMALL_TALK), ("small-talk-2", SMALL_TALK[::-1])):
        cube.add([{"text": t, "type": "event", "session_id": session, "occurred_at": "2024-07-02"} for t in turns], client="chat")
    day = [
        o.id
        for o in cube.add([{"text": t, "type": memory_type, "occurred_at": "2024-07-01"} for t in FACT_DAY], client="assistant")
    ]
    assert thread_key(cube, day[0]) == "d:assistant:2024-07-01"
    hits = cube.search(SearchQuery(query="bees on the roof", limit=10, signals=("keyword", "context"))).hits
    noor = next(h for h in hits if h.id == day[0])
    own, context = noor.signals["keyword"], noor.signals["context"]
    assert own.rank == 1  # the best own-text match ...
    talk = [h.signals["context"] for h in hits if h.text in BEE_TALK]
    assert min(t.rank for t in talk) == 1  # ... whose day's window is not the best window
    if memory_type == "event":
        assert context.score < max(t.score for t in talk)  # a turn is matched through its window
    else:
        assert context.score == own.score  # a statement keeps its own match
