"""More of the time phrases people use: ranges, bounds, hours, quarters, holidays, "the week before last".

Each reading is checked against a fixed reference time; the last tests run the real search
(SQLite, ONNX model) to show the window reaches the meant memory.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memory.models import SearchQuery
from memory.retrieval.time_words import resolve

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)  # Sunday 6 December 2026, 15:00


@pytest.mark.parametrize(
    ("query", "since", "until"),
    [
        # Ranges: the whole span, not its first day.
        ("what happened between Nov 20 and Nov 25", "2026-11-20T00:00:00Z", "2026-11-25T23:59:59Z"),
        ("the trip from May 3 to 9", "2026-05-03T00:00:00Z", "2026-05-09T23:59:59Z"),
        ("visits between May 3rd and the 9th", "2026-05-03T00:00:00Z", "2026-05-09T23:59:59Z"),
        ("notes from Monday to Wednesday", "2026-11-30T00:00:00Z", "2026-12-02T23:59:59Z"),
        ("the garden in March through May", "2026-03-01T00:00:00Z", "2026-05-31T23:59:59Z"),
        ("meetings from 2024-03-01 to 2024-03-05", "2024-03-01T00:00:00Z", "2024-03-05T23:59:59Z"),
        # Bounds on one side.
        ("what changed since Tuesday", "2026-12-01T00:00:00Z", "2026-12-06T14:59:59Z"),
        ("what did we buy before Thanksgiving", None, "2026-11-25T23:59:59Z"),
        ("projects before 2020", None, "2019-12-31T23:59:59Z"),
        ("what changed after 2020", "2021-01-01T00:00:00Z", "2026-12-06T14:59:59Z"),
        ("what was decided after Monday", "2026-12-01T00:00:00Z", "2026-12-06T14:59:59Z"),
        ("trips before June", None, "2026-05-31T23:59:59Z"),
        ("what changed after March", "2026-04-01T00:00:00Z", "2026-12-06T14:59:59Z"),
        ("the lease prior to May", None, "2026-04-30T23:59:59Z"),
        ("swims after summer", "2026-09-01T00:00:00Z", "2026-12-06T14:59:59Z"),
        # An event of that day bounds it: the day itself.
        ("notes after Monday's standup", "2026-11-30T00:00:00Z", "2026-11-30T23:59:59Z"),
        # Hours.
        ("messages in the past 48 hours", "2026-12-04T15:00:00Z", "2026-12-06T14:59:59Z"),
        ("the note I saved 3 hours ago", "2026-12-06T11:00:00Z", "2026-12-06T12:59:59Z"),
        # Loose moments back.
        ("the quiz the week before last", "2026-11-16T00:00:00Z", "2026-11-28T23:59:59Z"),
        ("the restaurant we tried the other day", "2026-11-29T00:00:00Z", "2026-12-05T23:59:59Z"),
        ("the hike a few weeks back", "2026-10-28T00:00:00Z", "2026-11-26T23:59:59Z"),
        ("the call three days back", "2026-12-02T00:00:00Z", "2026-12-04T23:59:59Z"),
        ("the concert a month or so ago", "2026-09-20T00:00:00Z", "2026-11-21T23:59:59Z"),
        ("the book I finished a week or two ago", "2026-11-18T00:00:00Z", "2026-12-03T23:59:59Z"),
        ("plans for the day after tomorrow", "2026-12-08T00:00:00Z", "2026-12-08T23:59:59Z"),
        # Days of the month, quarters, halves.
        ("what did we decide on the 3rd?", "2026-12-03T00:00:00Z", "2026-12-03T23:59:59Z"),
        ("revenue in Q3", "2026-07-01T00:00:00Z", "2026-09-30T23:59:59Z"),
        ("Q3 2025 revenue", "2025-07-01T00:00:00Z", "2025-09-30T23:59:59Z"),
        ("hiring last quarter", "2026-07-01T00:00:00Z", "2026-09-30T23:59:59Z"),
        ("travel in the second half of last year", "2025-07-01T00:00:00Z", "2025-12-31T23:59:59Z"),
        # Holidays.
        ("what we cooked over Christmas", "2025-12-24T00:00:00Z", "2025-12-26T23:59:59Z"),
        ("the party on New Year's Eve", "2025-12-31T00:00:00Z", "2025-12-31T23:59:59Z"),
        ("where we went at Easter", "2026-04-03T00:00:00Z", "2026-04-06T23:59:59Z"),
        ("dinner on valentine's day", "2026-02-14T00:00:00Z", "2026-02-14T23:59:59Z"),
    ],
)
def test_phrases_people_use_become_the_window_they_mean(query, since, until):
    window, cleaned = resolve(query, NOW)
    assert window is not None, query
    assert (window.since, window.until) == (since, until)
    assert window.expression.lower() in query.lower()
    assert window.expression.lower() not in cleaned.lower()


@pytest.mark.parametrize(
    "query",
    [
        "what were the Q3 numbers",
        "the first half of the film",
        "third quarter of the game",
        "meet on the 3rd floor",
        "christmas gift ideas",
        "Easter eggs for the kids",
        "two weeks back in Rome",
        "after 2000 steps the battery died",
        "leg before wicket",
        "what did I do after lunch",
        "what did we do after the Christmas party",  # an event: memory.retrieval.event_anchor reads it
        "what did we do after the summer party",
        "the test before may fail",
    ],
)
def test_words_that_only_look_like_time_are_left_alone(query):
    assert resolve(query, NOW)[0] is None, resolve(query, NOW)


@pytest.fixture
def cube(home):
    return home.cube()


def test_a_range_reaches_the_memory_inside_it_not_only_its_first_day(cube):
    texts = {
        "inside": ("Plumber fixed the kitchen sink leak", "2026-11-23T10:00:00Z"),
        "first_day": ("Bought new towels for the guest room", "2026-11-20T10:00:00Z"),
        "outside": ("Plumber quoted for a new bathroom sink", "2026-10-02T10:00:00Z"),
    }
    ids = {k: o.id for k, o in zip(texts, cube.add([{"text": t, "occurred_at": d} for t, d in texts.values()]), strict=True)}
    result = cube.search(SearchQuery(query="what did the plumber do between Nov 20 and Nov 25", limit=5), now=NOW)
    assert result.time is not None and result.time.until == "2026-11-25T23:59:59Z"
    assert result.hits and result.hits[0].id == ids["inside"], [h.text for h in result.hits]


def test_before_a_holiday_prefers_what_came_before_it(cube):
    texts = {
        "before": ("Ordered the turkey from the butcher", "2026-11-20T10:00:00Z"),
        "after": ("Ordered a turkey sandwich at the cafe", "2026-11-30T10:00:00Z"),
    }
    ids = {k: o.id for k, o in zip(texts, cube.add([{"text": t, "occurred_at": d} for t, d in texts.values()]), strict=True)}
    result = cube.search(SearchQuery(query="what turkey did I order before Thanksgiving", limit=5), now=NOW)
    assert result.time is not None and result.time.since is None
    assert result.hits and result.hits[0].id == ids["before"], [h.text for h in result.hits]


@pytest.mark.parametrize(
    ("year", "good_friday", "thanksgiving"),
    # Easter Sunday 2024-03-31, 2025-04-20, 2026-04-05, 2027-03-28; Easter is Good Friday to Easter Monday.
    [
        (2024, "2024-03-29", "2024-11-28"),
        (2025, "2025-04-18", "2025-11-27"),
        (2026, "2026-04-03", "2026-11-26"),
        (2027, "2027-03-26", "2027-11-25"),
    ],
)
def test_moving_holidays_fall_on_their_days(year, good_friday, thanksgiving):
    now = datetime(year, 12, 31, tzinfo=UTC)
    easter, _ = resolve("the hike at Easter", now)
    assert easter is not None and easter.since == f"{good_friday}T00:00:00Z"
    turkey, _ = resolve("dinner on Thanksgiving", now)
    assert turkey is not None and (turkey.since, turkey.until) == (f"{thanksgiving}T00:00:00Z", f"{thanksgiving}T23:59:59Z")


DAY = [
    "Bought new running shoes at the mall",
    "The dentist said my teeth are fine",
    "Watered the plants on the balcony",
    "Called mom about the holidays",
    "Fixed the squeaky hinge on the bedroom door",
    "Paid the electricity bill",
    "Finished the crossword in record time",
    "Booked a table for Saturday dinner",
]


def test_a_window_with_a_topic_is_not_padded_with_the_rest_of_the_day(cube):
    ids = [o.id for o in cube.add([{"text": t, "occurred_at": f"2026-12-05T{8 + i:02d}:00:00Z"} for i, t in enumerate(DAY)])]
    asked = cube.search(SearchQuery(query="what shoes did I buy yesterday", limit=10), now=NOW)
    assert asked.time_applied and asked.hits[0].id == ids[0]
    # The day's other memories share nothing with the question and are far weaker than its answer.
    assert len(asked.hits) < len(DAY), [h.text for h in asked.hits]
    # A question about the time alone gets the whole day.
    whole = cube.search(SearchQuery(query="what did I do yesterday", limit=10), now=NOW)
    assert {h.id for h in whole.hits} == set(ids)
    # include_weak still returns every memory of the window.
    every = cube.search(SearchQuery(query="what shoes did I buy yesterday", limit=10, include_weak=True), now=NOW)
    assert {h.id for h in every.hits} == set(ids)
