"""Time named by an event (issue 27): "before the kickoff meeting", "after the move", "since the launch".

The event is a memory that happened; the window runs up to it or from it. Through the MCP tool
``memory_search`` on a real cube (SQLite, the ONNX model, a fixed ``now``), and the phrase
reading on its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from memory.retrieval.event_anchor import read_event
from tests.support import ok


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


NOW = "2026-04-20T12:00:00Z"

MEMORIES = [
    ("Kickoff meeting for the garden project with the landscaper", "event", "2026-03-02T10:00:00Z", None),
    ("Ordered cedar boards and soil for the raised beds", "event", "2026-02-20T09:00:00Z", None),
    ("Ordered a new office chair, the old one squeaks", "event", "2025-11-04T09:00:00Z", None),
    ("Ordered tomato and basil seeds from the catalogue", "event", "2026-03-12T18:00:00Z", None),
    # Names the event after "before": a plan made around it, never the event itself.
    ("Order compost before the kickoff meeting", "task", None, "2026-03-01T09:00:00Z"),
    ("Moved into the flat on Elm Street, boxes everywhere", "event", "2026-01-10T15:00:00Z", None),
    ("Slept badly for a week, the street is loud at night", "event", "2026-01-20T08:00:00Z", None),
    ("Slept well all summer at the old place", "event", "2025-08-01T08:00:00Z", None),
    ("Paid the electricity bill online", "event", "2026-02-03T10:00:00Z", None),
    ("Book club picked a novel about a lighthouse keeper", "event", "2026-03-05T19:00:00Z", None),
]


@pytest.fixture
async def cube_client(client):
    ids = {}
    for text, type_, occurred_at, due_at in MEMORIES:
        arguments: dict[str, Any] = {"text": text, "type": type_}
        if occurred_at:
            arguments["occurred_at"] = occurred_at
        if due_at:
            arguments["due_at"] = due_at
        ids[text] = (await ok(client, "memory_add", **arguments))["ids"][0]
    return client, ids


@pytest.mark.anyio
async def test_before_and_after_an_event_are_the_weeks_up_to_it_and_from_it(cube_client):
    client, ids = cube_client
    before = await ok(client, "memory_search", query="What did I order before the kickoff meeting?", now=NOW)
    # First among what happened; a task due then that names the event ("order compost before the
    # kickoff meeting") is in the window too, a plan for it.
    happened = [h["id"] for h in before["hits"] if h["occurred_at"]]
    assert happened[0] == ids["Ordered cedar boards and soil for the raised beds"]
    assert before["time_applied"] and before["time"]["expression"] == "before the kickoff meeting"
    assert before["time"]["since"] <= "2026-02-20T09:00:00Z" and before["time"]["until"] == "2026-03-02T23:59:59Z"
    assert ids["Ordered a new office chair, the old one squeaks"] not in [h["id"] for h in before["hits"][:2]]

    after = await ok(client, "memory_search", query="What did I order after the kickoff meeting?", now=NOW)
    assert after["hits"][0]["id"] == ids["Ordered tomato and basil seeds from the catalogue"]
    assert after["time"]["since"] == "2026-03-02T00:00:00Z" and after["time"]["until"] == NOW  # its own day included


@pytest.mark.anyio
async def test_since_an_event_runs_to_now_and_the_event_word_may_take_another_form(cube_client):
    client, ids = cube_client
    found = await ok(client, "memory_search", query="How have I slept since the move?", now=NOW)
    assert found["hits"][0]["id"] == ids["Slept badly for a week, the street is loud at night"]
    assert found["time"]["since"] == "2026-01-10T00:00:00Z" and found["time"]["until"] >= "2026-04-20T00:00:00Z"


@pytest.mark.anyio
async def test_an_event_no_memory_holds_names_no_window(cube_client):
    client, _ = cube_client
    found = await ok(client, "memory_search", query="What did I order before the wedding?", now=NOW)
    assert found["time"] is None and found["time_applied"] is False
    assert found["hits"] and all(h["text"].startswith(("Ordered", "Order")) for h in found["hits"][:3])


def test_the_phrase_is_read_with_its_owner_and_clause():
    phrase = read_event("What did Ana say after Leo's interview?")
    assert phrase is not None and (phrase.relation, phrase.event) == ("after", "Leo interview")
    phrase = read_event("What did we decide prior to the launch, and why?")
    assert phrase is not None and (phrase.relation, phrase.event, phrase.expression) == (
        "before",
        "launch",
        "prior to the launch",
    )
    phrase = read_event("What did Kim do after the ski trip to unwind?")
    assert phrase is not None and phrase.event == "ski trip" and "unwind" in phrase.rest
    # The event's words stay in the question that orders the window when it lacks them.
    phrase = read_event("What did I buy before the trip?")
    assert phrase is not None and phrase.rest == "What did I buy trip ?"
    phrase = read_event("What did we ask for in the budget before the budget meeting?")
    assert phrase is not None and phrase.rest == "What did we ask for in the budget meeting ?"
    for query in ("Do I eat before bed?", "What was due before 5pm?", "What happened after 3 days?", "What is the plan?"):
        assert read_event(query) is None, query
