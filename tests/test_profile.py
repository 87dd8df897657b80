"""Goals, tasks, preferences per role, supersession, time words and the profile, through MCP."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from support import add, error, get, ok, read_json, search

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


NOW = "2026-11-25T17:00:00Z"


async def test_a_task_moves_through_its_states_and_keeps_its_feedback_log(client):
    task = await add(client, "Migrate the billing service to Postgres 17", type="task", due_at="2026-12-01", role="work")
    assert (await get(client, task))["state"] == "todo"

    await ok(
        client,
        "memory_progress",
        id=task,
        state="in_progress",
        feedback={"tried": "dry run on staging", "result": "two slow queries"},
    )
    await ok(
        client,
        "memory_progress",
        id=task,
        state="blocked",
        feedback={"tried": "index on invoices.customer_id", "result": "waiting for DBA review"},
    )
    done = await ok(client, "memory_progress", id=task, state="done", feedback={"result": "migrated, p95 down 30%"})

    assert done["state"] == "done"
    assert [f["result"] for f in done["feedback"]] == ["two slow queries", "waiting for DBA review", "migrated, p95 down 30%"]
    assert done["feedback"][0]["tried"] == "dry run on staging"
    history = (await ok(client, "memory_history", id=task))["versions"]
    ops = [v["op"] for v in history]
    assert ops.count("feedback") == 3 and ops.count("update") == 3
    state_changes = [v["changes"]["state"] for v in history if "state" in v["changes"]]
    assert [c["new"] for c in state_changes] == ["todo", "in_progress", "blocked", "done"]


async def test_a_goal_is_active_until_achieved_or_dropped(client):
    goal = await add(client, "Run a marathon in under four hours", type="goal", role="home")
    task = await add(client, "Long run of 30 km on Sunday", type="task", parent_id=goal)
    assert (await get(client, goal))["state"] == "active"
    assert (await get(client, task))["parent_id"] == goal
    achieved = await ok(client, "memory_progress", id=goal, state="achieved")
    assert achieved["state"] == "achieved"
    message = await error(client, "memory_progress", id=goal, state="done")
    assert "active, achieved, dropped" in message
    assert (await get(client, goal))["state"] == "achieved"


async def test_states_and_feedback_are_checked(client):
    note = await add(client, "The office wifi password changes monthly")
    assert "goals and tasks" in await error(client, "memory_progress", id=note, state="done")
    assert "state" in await error(client, "memory_add", text="Buy milk", type="task", state="finished")
    task = await add(client, "Buy milk", type="task")
    assert "tried" in await error(client, "memory_progress", id=task, feedback={})
    assert "nothing to record" in await error(client, "memory_progress", id=task)
    assert "no memory" in await error(
        client, "memory_add", text="Orphan task", type="task", parent_id="mem_00000000000000000000000000"
    )
    assert (await get(client, task))["version"] == 1


async def test_a_newer_preference_supersedes_the_older_in_its_role_only(client):
    work_old = await add(client, "I prefer dark mode in my editor", type="preference", role="work")
    home = await add(client, "I prefer dark mode in my editor at home", type="preference", role="home")
    work_new = await add(client, "I now prefer light mode in the editor", type="preference", role="work")

    old = await get(client, work_old)
    assert old["status"] == "archived" and old["superseded_by"] == work_new
    assert (await get(client, work_new))["supersedes"] == work_old
    assert (await get(client, home))["status"] == "active"

    hits = [h["id"] for h in await search(client, "editor theme preference")]
    assert work_new in hits and home in hits and work_old not in hits

    chain = (await ok(client, "memory_history", id=work_old))["versions"]
    assert chain[-1]["op"] == "supersede"
    assert chain[-1]["changes"]["superseded_by"]["new"] == work_new


async def test_a_subject_key_given_by_the_client_decides_supersession(client):
    first = await add(client, "Coffee: black, no sugar", type="preference", subject="coffee")
    unrelated = await add(client, "Tea: green, in the afternoon", type="preference", subject="tea")
    second = await add(client, "Coffee: flat white with oat milk", type="preference", subject="Coffee")
    assert (await get(client, first))["status"] == "archived"
    assert (await get(client, unrelated))["status"] == "active"
    assert (await get(client, second))["supersedes"] == first
    fact_old = await add(client, "Standup is at 9:00", type="fact", subject="standup time", role="work")
    fact_new = await add(client, "Standup moved to 9:30", type="fact", subject="standup time", role="work")
    assert (await get(client, fact_old))["superseded_by"] == fact_new


async def test_the_graph_links_the_newer_preference_to_the_one_it_superseded(client, home):
    old = await add(client, "Alice prefers tea over coffee", type="preference", entities=["Alice"])
    new = await add(client, "Alice now prefers coffee over tea", type="preference", entities=["Alice"])
    cube = home.cube("default")
    cube.sync_graph()
    assert (new, old) in cube.graph_store.supersedes()
    mentioned = [m["id"] for m in (await ok(client, "memory_graph", entity="Alice"))["memories"]]
    assert mentioned == [new]


async def _seed_profile(client) -> dict[str, str]:
    ids = {}
    ids["goal"] = await add(client, "Ship MemCube 1.0 before spring", type="goal", role="work", importance=0.9)
    ids["home_goal"] = await add(client, "Learn to play the cello", type="goal", role="home")
    ids["blocked"] = await add(client, "Get the security review signed off", type="task", role="work", due_at="2026-11-20")
    await ok(
        client,
        "memory_progress",
        id=ids["blocked"],
        state="blocked",
        feedback={"tried": "sent the threat model", "result": "reviewer on leave until December"},
    )
    ids["todo"] = await add(
        client, "Write the release notes", type="task", role="work", due_at="2026-12-02", parent_id=ids["goal"]
    )
    ids["done"] = await add(client, "Fix the flaky search test", type="task", role="work")
    await ok(client, "memory_progress", id=ids["done"], state="done", feedback={"result": "seeded the random generator"})
    ids["pref_work"] = await add(client, "Prefers short written updates over meetings", type="preference", role="work")
    ids["pref_home"] = await add(client, "Prefers vegetarian recipes", type="preference", role="home")
    ids["event"] = await add(client, "Dentist appointment", type="event", occurred_at="2026-12-01T09:00:00Z", role="home")
    ids["fact"] = await add(client, "The team's on-call rotation changes on Mondays", type="fact", role="work")
    return ids


async def test_the_profile_puts_goals_then_open_work_first_and_cites_ids(client):
    ids = await _seed_profile(client)
    profile = await ok(client, "memory_profile", now=NOW)
    titles = [s["title"] for s in profile["sections"]]
    assert titles[:3] == ["Active goals", "Open tasks", "Coming up"]
    assert titles.index("Preferences (home)") < titles.index("Recently done")
    open_tasks = profile["sections"][1]["lines"]
    assert [line["id"] for line in open_tasks] == [ids["blocked"], ids["todo"]]  # overdue and blocked first
    assert "reviewer on leave until December" in open_tasks[0]["text"] and "overdue" in open_tasks[0]["text"]
    assert f"[{ids['done']}]" in profile["text"] and "seeded the random generator" in profile["text"]
    assert f"[{ids['event']}]" in profile["text"]
    for memory_id in ids.values():
        assert f"[{memory_id}]" in profile["text"]
    assert profile["tokens"] <= profile["budget_tokens"]


async def test_the_profile_keeps_to_its_token_budget_most_important_first(client):
    ids = await _seed_profile(client)
    small = await ok(client, "memory_profile", now=NOW, budget_tokens=100)
    assert small["tokens"] <= 100 and small["omitted"] > 0
    assert small["sections"][0]["title"] == "Active goals"
    assert ids["goal"] in small["text"] and ids["fact"] not in small["text"]


async def test_a_role_shows_its_own_memories_and_those_without_a_role(client):
    ids = await _seed_profile(client)
    shared = await add(client, "Prefers answers in British English", type="preference")
    home = await ok(client, "memory_profile", role="home", now=NOW)
    assert ids["pref_home"] in home["text"] and ids["home_goal"] in home["text"] and shared in home["text"]
    assert ids["pref_work"] not in home["text"] and ids["blocked"] not in home["text"]
    resource = await read_json(client, "memory://default/profile/home")
    assert resource["text"].split("as of")[0] == home["text"].split("as of")[0]
    tasks = await read_json(client, "memory://default/tasks")
    assert {t["id"] for t in tasks["tasks"]} == {ids["blocked"], ids["todo"], ids["done"]}
    assert {g["id"] for g in tasks["goals"]} == {ids["goal"], ids["home_goal"]}


async def test_the_start_prompt_loads_the_profile(client):
    ids = await _seed_profile(client)
    prompt = await client.get_prompt("start", {"role": "work"})
    text = prompt.messages[0].content.text
    assert ids["goal"] in text and ids["pref_work"] in text and ids["pref_home"] not in text


async def test_time_words_resolve_against_the_given_reference_time(client):
    yesterday = await add(client, "Call with the landlord about the heating", type="event", occurred_at="2026-11-24T15:00:00Z")
    last_week = await add(client, "Call with the bank about the mortgage", type="event", occurred_at="2026-11-18T10:00:00Z")
    due_this_week = await add(client, "Send the tax documents", type="task", due_at="2026-11-27")
    found = await ok(client, "memory_search", query="calls yesterday", now=NOW)
    assert [h["id"] for h in found["hits"]] == [yesterday] and found["time_applied"]
    found = await ok(client, "memory_search", query="calls last week", now=NOW)
    assert [h["id"] for h in found["hits"]] == [last_week]
    # This week is Monday 23 to Sunday 29 November: "due" asks for open work due then, the task due Friday.
    found = await ok(client, "memory_search", query="what is due this week", now=NOW)
    assert {h["id"] for h in found["hits"]} == {due_this_week}
    found = await ok(client, "memory_search", query="what happened this week", now=NOW)
    assert yesterday in {h["id"] for h in found["hits"]}
    # Nothing then: the calls come back, marked as outside the window; the unrelated task does not.
    nothing_then = await ok(client, "memory_search", query="calls in March 2020", now=NOW)
    assert nothing_then["time_applied"] is False
    assert {h["id"] for h in nothing_then["hits"]} == {yesterday, last_week}
    assert all(h["outside_window"] for h in nothing_then["hits"])


def _year_of_notes() -> tuple[list[dict], list[str], list[str]]:
    """A year of meeting notes: weekly syncs, two annual meetings, and three meetings today."""
    notes: list[dict] = []
    topics = [
        "hiring",
        "budget",
        "roadmap",
        "incident review",
        "customer feedback",
        "release planning",
        "vendor contracts",
        "office move",
    ]
    start = date(2025, 11, 24)
    for week in range(52):
        day = start + timedelta(weeks=week)
        topic = topics[week % len(topics)]
        notes.append(
            {
                "text": f"Weekly sync on {day.isoformat()}: discussed {topic}; action items assigned to the team.",
                "type": "event",
                "tags": ["meeting"],
                "occurred_at": f"{day.isoformat()}T10:00:00Z",
            }
        )
    annual = {
        "2025-01-15": [
            "revenue grew 12% over the year",
            "two new offices were approved",
            "the pension plan changes were postponed",
        ],
        "2026-01-14": [
            "revenue grew 18% and margins improved",
            "the company will hire 40 engineers",
            "the board approved the Berlin expansion",
        ],
    }
    last_annual: list[str] = []
    for day, points in annual.items():
        for point in points:
            notes.append(
                {
                    "text": f"Annual meeting key point: {point}.",
                    "type": "event",
                    "tags": ["meeting", "annual"],
                    "occurred_at": f"{day}T14:00:00Z",
                }
            )
            if day == "2026-01-14":
                last_annual.append(f"Annual meeting key point: {point}.")
    today = [
        "Standup at 9:30: the search latency regression is fixed.",
        "Design review at 11:00 of the new onboarding flow.",
        "One-to-one with Priya at 15:00 about her promotion case.",
    ]
    for hour, text in zip((9, 11, 15), today, strict=True):
        notes.append({"text": text, "type": "event", "tags": ["meeting"], "occurred_at": f"2026-11-25T{hour:02d}:30:00Z"})
    return notes, today, last_annual


async def test_a_year_of_notes_todays_meetings_then_the_last_annual_meeting(client):
    notes, today, last_annual = _year_of_notes()
    added = await ok(client, "memory_add", memories=notes)
    text_of = {n["text"]: i for n, i in zip(notes, added["ids"], strict=True)}
    task = await add(client, "Prepare the Q1 hiring plan", type="task", due_at="2026-12-10", role="work")
    await ok(
        client,
        "memory_progress",
        id=task,
        state="in_progress",
        feedback={"tried": "drafted headcount per team", "result": "finance wants it by Friday"},
    )
    await add(client, "Prefers meeting notes as bullet points", type="preference", role="work")

    todays = await ok(client, "memory_search", query="list today's meetings", now=NOW)
    assert {h["id"] for h in todays["hits"]} == {text_of[t] for t in today}

    annual = await ok(client, "memory_search", query="and the key points from the last annual meeting", now=NOW, limit=5)
    top = [h["id"] for h in annual["hits"][: len(last_annual)]]
    assert set(top) == {text_of[t] for t in last_annual}

    profile = await ok(client, "memory_profile", role="work", now=NOW)
    assert task in profile["text"] and "finance wants it by Friday" in profile["text"]
    assert profile["tokens"] <= 1500
