"""Query planning (issue 30): what is overdue comes earliest due first; "what are my goals?" lists them all.

A month of personal memories (tests/personal_month.py, NOW a Wednesday) plus goals whose
words share nothing with the question: a type asked for by name is a listing of every open
one, not a relevance-ranked few, and a question about due dates is answered in due order.
"""

from __future__ import annotations

from typing import Any

import personal_month as pm
import pytest
from support import ok

from memory import SearchQuery

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


# Goals beside the month's two: one in words no goal question shares, one achieved, one dropped.
MORE_GOALS = [
    {"text": "Learn enough Italian to order dinner in Rome without pointing at the menu", "type": "goal"},
    {"text": "Goal: save for a new bicycle", "type": "goal", "state": "achieved"},
    {"text": "Goal: learn the cello", "type": "goal", "state": "dropped"},
]
# Overdue tasks added so that their order by relevance is not their order by due date.
LATE_TASKS = [
    {"text": "Renew the passport before the summer trip", "type": "task", "due_at": "2026-03-16T09:00:00Z"},
    {"text": "Return the library books", "type": "task", "due_at": "2026-03-02T09:00:00Z"},
    {"text": "Pay the overdue electricity bill", "type": "task", "due_at": "2026-03-13T09:00:00Z"},
]


def _load(cube: Any) -> tuple[dict[str, str], set[str], set[str]]:
    """The month plus the goals and tasks above: (key -> id, active goal ids, overdue task ids)."""
    ids = pm.load(cube)
    italian, _, _ = (o.id for o in cube.add(MORE_GOALS))
    late = {o.id for o in cube.add(LATE_TASKS)}
    active_goals = {ids["goal:launch"], ids["goal:marathon"], italian}
    overdue = {ids[k] for k in pm.expected_overdue()} | late
    return ids, active_goals, overdue


def _due_order(hits: list[Any]) -> list[str]:
    return [h["due_at"] if isinstance(h, dict) else h.due_at for h in hits]


@pytest.fixture
def cube(home):
    return home.cube(create=True)


@pytest.mark.parametrize("question", ["which tasks are overdue?", "what is overdue?", "what's past due"])
def test_overdue_hits_come_earliest_due_first(cube, question):
    _, _, overdue = _load(cube)
    result = cube.search(SearchQuery(query=question), now=pm.NOW)
    due = _due_order(result.hits)
    assert {h.id for h in result.hits} == overdue, result.tasks
    assert due == sorted(due), due
    assert result.tasks is not None and result.tasks.overdue


def test_overdue_filter_and_due_window_come_in_due_order(cube):
    _, _, overdue = _load(cube)
    flagged = cube.search(SearchQuery(query="tasks", overdue=True, limit=20), now=pm.NOW).hits
    assert {h.id for h in flagged} == overdue
    assert _due_order(flagged) == sorted(_due_order(flagged))
    next_week = cube.search(SearchQuery(query="what's due next week?"), now=pm.NOW).hits
    assert len(next_week) >= 2 and _due_order(next_week) == sorted(_due_order(next_week))


def test_a_limit_keeps_the_earliest_due(cube):
    _, _, overdue = _load(cube)
    hits = cube.search(SearchQuery(query="what is overdue?", limit=2), now=pm.NOW).hits
    assert [h.due_at for h in hits] == ["2026-03-02T09:00:00Z", "2026-03-11T17:00:00Z"]


@pytest.mark.parametrize("question", ["what are my goals?", "list my goals", "goals", "which goals do I have?"])
def test_what_are_my_goals_lists_every_active_goal(cube, question):
    _, active_goals, _ = _load(cube)
    result = cube.search(SearchQuery(query=question), now=pm.NOW)
    assert {h.id for h in result.hits} == active_goals, [h.text for h in result.hits]
    assert result.tasks is not None and result.tasks.expression.startswith("goal")
    assert result.below_floor == 0 and all(h.confidence == "high" for h in result.hits)


def test_my_tasks_lists_every_open_task_in_due_order(cube):
    ids, _, overdue = _load(cube)
    hits = cube.search(SearchQuery(query="what are my tasks?", limit=50), now=pm.NOW).hits
    open_tasks = {ids[k] for k, (_, state, _, _) in pm.TASKS.items() if state != "done"} | overdue
    assert {h.id for h in hits} == open_tasks
    dated = [h.due_at for h in hits if h.due_at is not None]
    assert dated == sorted(dated) and hits[-1].due_at is None  # undated ones last
    # A goal question with a topic stays a ranked search on it.
    topical = cube.search(SearchQuery(query="goals about running"), now=pm.NOW)
    assert topical.tasks is None and ids["goal:marathon"] in [h.id for h in topical.hits]


async def test_goals_and_overdue_through_mcp(home, connect):
    _, active_goals, overdue = _load(home.cube(create=True))
    async with connect(home) as client:
        goals = await ok(client, "memory_search", query="what are my goals?", now=pm.NOW)
        assert {h["id"] for h in goals["hits"]} == active_goals
        late = await ok(client, "memory_search", query="which tasks are overdue?", now=pm.NOW)
        assert {h["id"] for h in late["hits"]} == overdue
        assert _due_order(late["hits"]) == sorted(_due_order(late["hits"]))
