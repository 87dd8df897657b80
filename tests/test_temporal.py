"""Time words in a query become an occurred_at window relative to a reference time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memory.retrieval.time_words import resolve

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("query", "since", "until"),
    [
        ("list today's meetings", "2026-11-25T00:00:00Z", "2026-11-25T23:59:59Z"),
        ("what did I do yesterday", "2026-11-24T00:00:00Z", "2026-11-24T23:59:59Z"),
        ("plans for tomorrow", "2026-11-26T00:00:00Z", "2026-11-26T23:59:59Z"),
        ("what is due this week", "2026-11-23T00:00:00Z", "2026-11-29T23:59:59Z"),
        # The week before this one, weeks starting on Monday (16-22) or on Sunday (15-21): both readings (issue 27).
        ("decisions from last week", "2026-11-15T00:00:00Z", "2026-11-22T23:59:59Z"),
        ("spending last month", "2026-10-01T00:00:00Z", "2026-10-31T23:59:59Z"),
        ("goals for next year", "2027-01-01T00:00:00Z", "2027-12-31T23:59:59Z"),
        ("notes from May 2023", "2023-05-01T00:00:00Z", "2023-05-31T23:59:59Z"),
        ("what happened in 2022", "2022-01-01T00:00:00Z", "2022-12-31T23:59:59Z"),
        ("the meeting on 2026-03-04", "2026-03-04T00:00:00Z", "2026-03-04T23:59:59Z"),
    ],
)
def test_time_words_become_a_window(query, since, until):
    window, cleaned = resolve(query, NOW)
    assert window is not None
    assert (window.since, window.until) == (since, until)
    assert window.expression.lower() not in cleaned.lower()


def test_the_last_x_asks_for_the_most_recent_occasion_up_to_now():
    window, cleaned = resolve("key points from the last annual meeting", NOW)
    assert window is not None and window.latest
    assert window.since is None and window.until == "2026-11-25T15:00:00Z"
    assert cleaned == "key points from annual meeting"


def test_a_query_without_time_words_is_left_alone():
    assert resolve("When did Maya go to the choir rehearsal?", NOW) == (None, "When did Maya go to the choir rehearsal?")
    assert resolve("what did we say last time", NOW)[0] is None
    assert resolve("a year of 1234 cats", NOW)[0] is None
