"""Time words read as people mean them, and time as a strong preference, not a wall (issue 27).

Every case runs the real search (SQLite, ONNX model) against a fixed reference time ``now``.
"""

from __future__ import annotations

import pytest

from memory.models import SearchQuery
from tests.support import ok

SUNDAY = "2026-12-06T12:00:00Z"  # Sunday 6 December 2026
WEDNESDAY = "2026-11-25T15:00:00Z"

DENTIST = {
    "yesterday": ("Dentist visit: the hygienist cleaned my teeth", "2026-12-05T10:00:00Z"),
    "three_days": ("Dentist visit: a small filling on the left molar", "2026-12-03T10:00:00Z"),
    "two_weeks": ("Dentist visit: x-rays of the upper jaw", "2026-11-22T10:00:00Z"),
    "october": ("Dentist visit: checkup, the gums are fine", "2026-10-14T10:00:00Z"),
    "summer": ("Dentist visit: a crown fitted on the right side", "2026-07-15T10:00:00Z"),
    "winter": ("Dentist visit: wisdom tooth pulled", "2026-02-10T10:00:00Z"),
    "booked": ("Dentist visit: follow-up for the filling", "2026-12-20T10:00:00Z"),  # still to come
}


@pytest.fixture
def cube(home):
    return home.cube()


def _add(cube, items):
    ids = [o.id for o in cube.add([{"text": t, "type": "event", "occurred_at": d} for t, d in items.values()])]
    return dict(zip(items, ids, strict=True))


@pytest.mark.parametrize(
    ("query", "meant"),
    [
        ("which dentist visit was a few days ago", {"three_days"}),
        ("the dentist visit two weeks ago", {"two_weeks"}),
        ("the dentist visit a couple of weeks ago", {"two_weeks"}),
        ("dentist visit back in October", {"october"}),
        ("the dentist visit in mid-October", {"october"}),
        ("dentist visits since early October", {"october", "two_weeks", "three_days", "yesterday"}),
        ("what happened at the dentist in the summer", {"summer"}),
        ("dentist visits in the last 7 days", {"yesterday", "three_days"}),
        ("dentist visits in the last 10 days", {"yesterday", "three_days"}),
        ("dentist visits in the past week", {"yesterday", "three_days"}),
        ("dentist visits earlier this month", {"yesterday", "three_days"}),
        ("dentist visits in the past 3 months", {"yesterday", "three_days", "two_weeks", "october"}),
    ],
)
def test_rolling_relative_and_seasonal_phrases_find_the_meant_memory(cube, query, meant):
    ids = _add(cube, DENTIST)
    result = cube.search(SearchQuery(query=query, limit=10), now=SUNDAY)
    assert result.time is not None and result.time_applied, result.time
    assert {h.id for h in result.hits} == {ids[k] for k in meant}
    # The phrase is read as time and taken out of the text matched against the memories.
    assert result.time.expression.lower() in query.lower()


def test_last_week_asked_on_a_sunday_finds_the_monday_six_days_before(cube):
    ids = _add(
        cube,
        {
            "budget": ("Budget meeting: we decided to cut the travel budget by 10%", "2026-11-30T10:00:00Z"),
            "old_budget": ("Budget meeting: we kept the marketing spend as it was", "2026-10-12T10:00:00Z"),
            "lunch": ("Team lunch at the Thai place", "2026-11-25T12:00:00Z"),
        },
    )
    result = cube.search(SearchQuery(query="what did we decide about the budget last week?", limit=5), now=SUNDAY)
    assert result.hits[0].id == ids["budget"] and not result.hits[0].outside_window
    assert result.time is not None and result.time_applied
    # Both calendars' "last week": Monday 23 to Sunday 29 November and Sunday 29 November to Saturday 5 December.
    assert (result.time.since, result.time.until) == ("2026-11-23T00:00:00Z", "2026-12-05T23:59:59Z")


def test_the_last_x_is_the_most_recent_relevant_memory(cube):
    ids = _add(
        cube,
        {
            "retro_oct": ("Sprint retro: we agreed to shorten the standups", "2026-10-02T15:00:00Z"),
            "retro_nov": ("Sprint retro: we agreed to add a QA day before each release", "2026-11-13T15:00:00Z"),
            "retro_last": ("Sprint retro: we agreed to pair on code reviews", "2026-11-27T15:00:00Z"),
            "planning": ("Sprint planning: picked the search latency stories", "2026-12-01T10:00:00Z"),
        },
    )
    for query in ("what did we agree at the last retro?", "the most recent sprint retro", "latest retro outcome"):
        result = cube.search(SearchQuery(query=query, limit=5), now=SUNDAY)
        assert result.hits[0].id == ids["retro_last"], query
    # "in October" alone: the most recent October before now.
    result = cube.search(SearchQuery(query="what did we agree at the retro in October?", limit=5), now=SUNDAY)
    assert result.hits[0].id == ids["retro_oct"] and result.time is not None and result.time.since == "2026-10-01T00:00:00Z"


def test_a_window_with_nothing_relevant_gives_the_best_memories_just_outside_it_marked(cube):
    ids = _add(
        cube,
        {
            "budget": ("Budget meeting: we decided to cut the travel budget by 10%", "2026-11-12T10:00:00Z"),
            "old_budget": ("Budget meeting: we decided to freeze hiring for the budget", "2026-03-10T10:00:00Z"),
            "lunch": ("Team lunch at the Thai place", "2026-11-18T12:00:00Z"),
        },
    )
    # Last week (read on a Wednesday) holds only the lunch: the budget meeting three days before it comes first.
    result = cube.search(SearchQuery(query="what did we decide about the budget last week?", limit=5), now=WEDNESDAY)
    assert [h.id for h in result.hits[:2]] == [ids["budget"], ids["old_budget"]]
    assert all(h.outside_window for h in result.hits[:2]) and not result.time_applied
    assert "outside_window" in result.relevance
    # A window that holds the answer keeps it, unmarked.
    result = cube.search(SearchQuery(query="team lunch last week", limit=5), now=WEDNESDAY)
    assert result.hits[0].id == ids["lunch"] and not result.hits[0].outside_window and result.time_applied


def test_ordinary_words_are_not_read_as_time(cube):
    _add(cube, {"lyon": ("I spent a week in Lyon in the summer of 2024", "2024-07-20T10:00:00Z")})
    for query in ("I spent a week in Lyon", "summer dress", "Monday meetings", "what did we say last time"):
        assert cube.search(SearchQuery(query=query, limit=5), now=SUNDAY).time is None, query
    # While "the day before yesterday" and "last 10 days" are (the old reading missed both).
    assert cube.search(SearchQuery(query="calls the day before yesterday", limit=5), now=SUNDAY).time is not None
    assert cube.search(SearchQuery(query="calls over the last 10 days", limit=5), now=SUNDAY).time is not None


@pytest.mark.anyio
async def test_an_mcp_client_gets_the_sunday_reading_and_the_outside_window_mark(client):
    budget = await ok(
        client,
        "memory_add",
        text="Budget meeting: we decided to cut the travel budget by 10%",
        type="event",
        occurred_at="2026-11-30T10:00:00Z",
    )
    await ok(client, "memory_add", text="Team lunch at the Thai place", type="event", occurred_at="2026-11-25T12:00:00Z")
    found = await ok(client, "memory_search", query="what did we decide about the budget last week?", now=SUNDAY)
    assert found["hits"][0]["id"] == budget["ids"][0] and found["hits"][0]["outside_window"] is False and found["time_applied"]
    # Two days ago holds nothing about the budget: the meeting six days ago comes back, marked.
    found = await ok(client, "memory_search", query="the budget decision two days ago", now="2026-12-09T12:00:00Z")
    assert found["hits"][0]["id"] == budget["ids"][0] and found["hits"][0]["outside_window"] is True
    assert found["time_applied"] is False
