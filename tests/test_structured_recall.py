"""Structured recall (issue 15): tasks by state and due date, the relevance floor, types, labels.

A month of generated personal memories (tests/personal_month.py) with NOW a Wednesday:
"which tasks are overdue", "what's due next week" and "open tasks for the launch goal"
must return exactly the right tasks at the top, through MCP and through the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import personal_month as pm
import pytest
from support import error, ok

from memory import InvalidInput, MemoryHome, SearchQuery
from memory.entities import extract_entities
from memory.retrieval.task_words import read

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


ROOT = Path(__file__).resolve().parents[1]
MEMCUBE = Path(sys.executable).with_name("memcube")
NOW = datetime.fromisoformat(pm.NOW)

QUESTIONS = {
    "which tasks are overdue?": pm.expected_overdue,
    "what's due next week?": pm.expected_due_next_week,
    "open tasks for the launch goal": pm.expected_open_for_launch,
}


@pytest.fixture
def cube(home):
    return home.cube(create=True)


def _keys(ids: dict[str, str], hit_ids: list[str]) -> list[str]:
    back = {v: k for k, v in ids.items()}
    return [back.get(i, i) for i in hit_ids]


async def test_task_questions_find_exactly_the_right_tasks_through_mcp(home, connect):
    ids = pm.load(home.cube(create=True))
    async with connect(home) as client:
        for question, expected in QUESTIONS.items():
            result = await ok(client, "memory_search", query=question, now=pm.NOW, limit=10)
            found = _keys(ids, [h["id"] for h in result["hits"]])
            assert set(found) == expected(), (question, found, result["tasks"])
            assert result["tasks"] is not None and all(h["state"] not in (None, "done") for h in result["hits"])
            assert all(h["type"] == "task" for h in result["hits"])
        # The hits carry what a person needs to act on them.
        result = await ok(client, "memory_search", query="which tasks are overdue?", now=pm.NOW)
        by_key = dict(zip(_keys(ids, [h["id"] for h in result["hits"]]), result["hits"], strict=True))
        assert (
            by_key["store_listing"]["due_at"].startswith("2026-03-15")
            and by_key["store_listing"]["parent_id"] == ids["goal:launch"]
        )


@pytest.mark.slow  # a process per question
def test_task_questions_find_exactly_the_right_tasks_through_the_cli(tmp_path, shared_embedder):
    memory_home = MemoryHome(tmp_path, embedder=shared_embedder)
    ids = pm.load(memory_home.cube(create=True))
    memory_home.close()
    command = [str(MEMCUBE)] if MEMCUBE.is_file() else [sys.executable, "-m", "server"]
    for question, expected in QUESTIONS.items():
        done = subprocess.run(
            [*command, "--home", str(tmp_path), "search", question, "--now", pm.NOW, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            check=True,
        )
        result = json.loads(done.stdout)
        assert set(_keys(ids, [h["id"] for h in result["hits"]])) == expected(), question


def test_structured_filters_without_words(cube):
    ids = pm.load(cube)
    hits = cube.search(SearchQuery(query="tasks", overdue=True, limit=20), now=pm.NOW).hits
    assert set(_keys(ids, [h.id for h in hits])) == pm.expected_overdue()
    hits = cube.search(SearchQuery(query="tasks", states=["done"], types=["task"], limit=20), now=pm.NOW).hits
    assert set(_keys(ids, [h.id for h in hits])) == {"privacy_review", "long_run", "birthday_gift"}
    hits = cube.search(SearchQuery(query="tasks", due_after="2026-03-23", due_before="2026-03-29", limit=20), now=pm.NOW).hits
    assert set(_keys(ids, [h.id for h in hits])) == {"press_kit", "pricing_page", "running_shoes"}
    with pytest.raises(ValueError, match="did you mean blocked"):
        SearchQuery(query="x", states=["blockd"])


def test_task_words_are_read_against_the_callers_now():
    assert read("which tasks are overdue", NOW).filter.overdue
    window = read("what's due next week", NOW).filter
    assert (window.due_after, window.due_before) == ("2026-03-23T00:00:00Z", "2026-03-29T23:59:59Z")
    friday = read("tasks due by Friday", NOW).filter
    assert friday.due_after is None and friday.due_before == "2026-03-20T23:59:59Z"
    assert read("open tasks for the launch goal", NOW).goal == "launch"
    assert read("finished goals", NOW).filter.states == ["done", "achieved"]
    # State words need a query about tasks or goals: an open shop is not an open task.
    assert read("is the bakery open on Sundays", NOW).filter is None


def test_nonsense_finds_nothing_relevant_and_include_weak_shows_the_closest(cube):
    pm.load(cube)
    result = cube.search(SearchQuery(query="tensile strength of carbon fibre bicycle frames"), now=pm.NOW)
    assert result.hits == [] and result.below_floor > 0 and result.relevance.startswith("nothing relevant found")
    weak = cube.search(SearchQuery(query="tensile strength of carbon fibre bicycle frames", include_weak=True), now=pm.NOW)
    assert weak.hits and {h.confidence for h in weak.hits} == {"low"}
    good = cube.search(SearchQuery(query="Marco prefers code reviews in the morning"), now=pm.NOW)
    assert good.hits[0].confidence == "high"


def test_types_are_checked_with_a_suggestion_and_custom_types_need_a_declaration(tmp_path, shared_embedder):
    memory_home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        with pytest.raises(InvalidInput, match=r"did you mean task\?"):
            memory_home.cube(create=True).add([{"text": "call the bank", "type": "tsk"}])
        with pytest.raises(InvalidInput, match=r"did you mean preference\?"):
            memory_home.cube().add([{"text": "tea over coffee", "type": "preferences"}])
        assert memory_home.cube().stats().active == 0
    finally:
        memory_home.close()
    (tmp_path / "config.toml").write_text('[types]\ncustom = ["recipe"]\n')
    declared = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        assert declared.cube().add([{"text": "Grandma's lentil soup", "type": "recipe"}])[0].created
    finally:
        declared.close()


async def test_a_mistyped_type_is_refused_through_mcp_and_creates_no_cube(client, home):
    message = await error(client, "memory_add", text="call the bank", type="tsk", cube="errands")
    assert "did you mean task" in message
    assert "errands" not in home.cube_names()


def test_labels_and_sentence_openers_are_not_entities():
    assert extract_entities("Goal: run a half marathon") == []
    assert extract_entities("Note: Marco Bianchi called") == ["Marco Bianchi"]
    assert extract_entities("Maya: Glad you came") == ["Maya"]  # a speaker stays a name
    assert extract_entities("Finished the report for Priya") == ["Priya"]
