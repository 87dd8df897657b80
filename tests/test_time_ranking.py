"""Ranking inside a time window (issue 27): the window filters, the rest of the question orders.

Through the MCP tool ``memory_search`` (real SQLite, real ONNX model, a fixed ``now``):
- a question naming a period and a topic brings that period's memory about the topic first,
  ahead of the period's memories that only share the words that ask about happening
  ("go", "do", "say", "tell");
- a window does not change how well a memory matches: the vector signal keeps the whole
  cube's scale, so two memories alone in a day are not set two standard deviations apart by a
  0.01 difference in cosine;
- asked about a time already past, what happened in it comes before a task only due in it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import ok


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


NOW = "2026-11-15T19:30:00Z"  # a Sunday


# A cube's everyday memories around the cases, so that word statistics are a cube's, not three texts'.
FILLER = [
    ("Paid the electricity bill online", "event", "2026-06-03T10:00:00Z", None),
    ("Bought a new rain jacket at REI", "event", "2026-07-14T12:00:00Z", None),
    ("Sofia moved to Porto for a job at a design studio", "fact", None, None),
    ("I prefer tea to coffee in the afternoon", "preference", None, None),
    ("Long run along the river, 12k, knees fine", "event", "2026-08-23T08:00:00Z", None),
    ("Book club picked a novel about a lighthouse keeper", "event", "2026-09-05T19:00:00Z", None),
    ("Car inspection passed, the brakes need work next year", "event", "2026-10-08T09:00:00Z", None),
    ("Planted tulip bulbs on the balcony", "event", "2026-11-02T15:00:00Z", None),
]


async def _add(client: Any, items: list[tuple[str, str, str | None, str | None]]) -> list[str]:
    ids = []
    for text, type_, occurred_at, due_at in [*items, *FILLER]:
        arguments: dict[str, Any] = {"text": text, "type": type_}
        if occurred_at:
            arguments["occurred_at"] = occurred_at
        if due_at:
            arguments["due_at"] = due_at
        ids.append((await ok(client, "memory_add", **arguments))["ids"][0])
    return ids[: len(items)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "meant", "others", "elsewhere"),
    [
        (
            "Which concert did I go to in October?",
            ("Saw Arctic Monkeys live at the Roseland, the band played for two hours", "2026-10-17T21:00:00Z"),
            [
                ("Priya liked the new logo, go ahead with the green one", "2026-10-15T10:00:00Z"),
                ("Told the landlord we will go on renewing the lease", "2026-10-03T10:00:00Z"),
            ],
            ("Jazz concert at the Blue Note with Sam", "2026-05-02T21:00:00Z"),
        ),
        (
            "What did the dentist say in the summer?",
            ("Checkup at Dr. Moreau's practice: no cavities, floss more", "2026-07-09T09:00:00Z"),
            [
                ("Anna says the kids want a puppy for the holidays", "2026-07-20T18:00:00Z"),
                ("The plumber says the boiler will last another winter", "2026-08-02T12:00:00Z"),
            ],
            ("The dentist says my wisdom tooth has to come out", "2026-03-11T09:00:00Z"),
        ),
    ],
)
async def test_the_periods_memory_about_the_topic_comes_first(client, query, meant, others, elsewhere):
    """A period and a topic: the period's memory on the topic first, not one matching "go" or "say"."""
    # The same topic in another period, and the period's other memories.
    ids = await _add(
        client,
        [(meant[0], "event", meant[1], None)]
        + [(text, "event", when, None) for text, when in others]
        + [(elsewhere[0], "event", elsewhere[1], None)],
    )
    found = await ok(client, "memory_search", query=query, now=NOW)
    assert found["time_applied"], found
    assert found["hits"][0]["id"] == ids[0], [h["text"] for h in found["hits"]]


@pytest.mark.anyio
async def test_a_window_filters_without_changing_how_well_a_memory_matches(client):
    """The same memory scores the same with and without a window that holds it (the vector keeps the cube's scale)."""
    ids = await _add(
        client,
        [
            (
                "Retro notes: flaky tests blocked two deploys, we agreed on a quarantine list",
                "event",
                "2026-10-01T16:00:00Z",
                None,
            ),
            ("Teo's band plays their first gig at the Doug Fir next month", "event", "2026-10-01T20:00:00Z", None),
            ("Bought a new rain jacket at REI", "event", "2026-09-20T12:00:00Z", None),
            ("Sprint planning: the search rewrite takes two sprints", "event", "2026-09-24T10:00:00Z", None),
            ("Paid the electricity bill", "event", "2026-09-28T10:00:00Z", None),
            ("Climbing gym with Sofia, sent my first V4", "event", "2026-09-27T19:00:00Z", None),
        ],
    )
    query = "flaky tests quarantine list"
    everywhere = await ok(client, "memory_search", query=query, limit=3)
    windowed = await ok(client, "memory_search", query=query, limit=3, since="2026-10-01T00:00:00Z", until="2026-10-01T23:59:59Z")
    assert everywhere["hits"][0]["id"] == windowed["hits"][0]["id"] == ids[0]
    assert windowed["hits"][0]["score"] == pytest.approx(everywhere["hits"][0]["score"], abs=1e-4)


@pytest.mark.anyio
async def test_a_day_of_two_memories_is_ordered_by_the_question_not_by_noise(client):
    """Two memories alone in yesterday's window: the one about the question's topic comes first."""
    ids = await _add(
        client,
        [
            (
                "Retro notes: flaky tests blocked two deploys, Keiko proposed a quarantine list",
                "event",
                "2026-10-01T16:00:00Z",
                None,
            ),
            ("Teo plays bass in a band, their first gig is at the Doug Fir", "event", "2026-10-01T20:00:00Z", None),
            ("Retro notes: the release checklist keeps getting skipped", "event", "2026-08-20T16:00:00Z", None),
            ("Lunch with the design team at the ramen place", "event", "2026-09-29T12:00:00Z", None),
        ],
    )
    found = await ok(client, "memory_search", query="What did we decide at the retro yesterday?", now="2026-10-02T18:00:00Z")
    assert found["time_applied"]
    assert found["hits"][0]["id"] == ids[0], found["hits"]


@pytest.mark.anyio
async def test_a_past_window_brings_what_happened_before_a_task_only_due_in_it(client):
    """ "What did we decide ... last week?": the meeting that happened, not the to-do that fell due then."""
    ids = await _add(
        client,
        [
            ("Roadmap meeting: we dropped the mobile app from the roadmap for next year", "event", "2026-11-09T11:00:00Z", None),
            ("Send Priya the roadmap slides before Monday's roadmap meeting", "task", None, "2026-11-06T17:00:00Z"),
            ("Roadmap brainstorm with the design team", "event", "2026-10-12T11:00:00Z", None),
        ],
    )
    found = await ok(client, "memory_search", query="What did we decide about the roadmap last week?", now=NOW)
    assert found["time_applied"]
    assert found["hits"][0]["id"] == ids[0], [(h["text"], h["score"], h["signals"]) for h in found["hits"]]
    # The task stays within reach, and a window still to come keeps what falls due in it first.
    assert ids[1] in [h["id"] for h in found["hits"]]
    ahead = await ok(client, "memory_search", query="roadmap slides this week", now="2026-11-04T10:00:00Z")
    assert ahead["hits"][0]["id"] == ids[1]


@pytest.mark.anyio
async def test_a_question_finds_the_irregular_form_its_memory_used(client):
    """ "Which restaurant did I try last week?": "Tried the new Georgian place" matches "try" (the stemmer alone does not fold them)."""
    ids = await _add(
        client,
        [
            ("Tried the new Georgian place on Alberta Street, the khachapuri was huge", "event", "2026-11-12T20:00:00Z", None),
            ("Jonah wants to try the soup setting on the new blender", "note", "2026-11-13T09:00:00Z", None),
            ("Swapped the winter tires on the car", "event", "2026-11-11T09:00:00Z", None),
        ],
    )
    found = await ok(client, "memory_search", query="Which restaurant did I try last week?", now=NOW)
    assert found["time_applied"]
    assert found["hits"][0]["id"] == ids[0], [h["text"] for h in found["hits"]]
    assert "keyword" in found["hits"][0]["signals"]
