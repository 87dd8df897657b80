"""Clearing an optional field of a memory (issue 30): a person in the browser and an assistant over
MCP can empty a due date, a time, a role, a subject or a goal link, and not only change them.

``memory_update`` and the UI's PATCH take ``clear: ["due_at", ...]``: the named fields become
empty as a new version (history: old -> None, with the client), and search follows (a task with
no due date is never overdue). A field given as null still keeps its value, as before: clients
that send every argument, null for those they do not mean, erase nothing. Text, type, importance
and a task's state cannot be cleared, and an unknown name is refused with the clearable ones.

Real home (SQLite, Kuzu, the ONNX embedder), real in-process MCP clients (modern and 2025
handshake), the UI on a real loopback socket, and the ``memcube update --clear`` console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import CLIENT_NAME, add, error, get, ok, search_ids
from ui_support import seeded_ui


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


NOW = "2026-03-18T12:00:00Z"
CLEARABLE_FIELDS = ("occurred_at", "due_at", "role", "subject", "parent_id")  # as memory.models says, written out


async def _task_with_everything(client) -> tuple[str, str]:
    goal = await add(client, "Run the Lisbon half marathon", type="goal")
    task = await add(
        client,
        "Buy new running shoes before the race",
        type="task",
        due_at="2026-03-10",
        occurred_at="2026-03-01T08:00:00Z",
        role="athlete",
        subject="running shoes",
        parent_id=goal,
    )
    return goal, task


@pytest.mark.anyio
async def test_memory_update_clears_the_named_fields_as_a_new_version(client):
    goal, task = await _task_with_everything(client)
    # Null keeps a field, as it always has: nothing changes, no version is written.
    kept = await ok(client, "memory_update", id=task, due_at=None, role=None, subject=None, occurred_at=None, tags=[])
    assert (kept["due_at"], kept["role"], kept["version"]) == ("2026-03-10T00:00:00Z", "athlete", 1)

    cleared = await ok(client, "memory_update", id=task, clear=["due_at", "occurred_at", "role", "subject", "parent_id"])
    assert cleared["version"] == 2
    assert [cleared[k] for k in CLEARABLE_FIELDS] == [None] * len(CLEARABLE_FIELDS)
    assert (cleared["text"], cleared["type"], cleared["state"]) == ("Buy new running shoes before the race", "task", "todo")
    stored = await get(client, task)
    assert [stored[k] for k in CLEARABLE_FIELDS] == [None] * len(CLEARABLE_FIELDS)

    latest = (await ok(client, "memory_history", id=task))["versions"][-1]
    assert (latest["op"], latest["client"]) == ("update", CLIENT_NAME)
    assert latest["changes"] == {
        "due_at": {"old": "2026-03-10T00:00:00Z", "new": None},
        "occurred_at": {"old": "2026-03-01T08:00:00Z", "new": None},
        "role": {"old": "athlete", "new": None},
        "subject": {"old": "running shoes", "new": None},
        "parent_id": {"old": goal, "new": None},
    }
    # Clearing what is already empty changes nothing.
    again = await ok(client, "memory_update", id=task, clear=["due_at"])
    assert again["version"] == 2


@pytest.mark.anyio
async def test_a_cleared_due_date_leaves_the_task_out_of_overdue_and_goal_answers(client, home):
    def serving(goal: str) -> list[str]:  # the library's search: the MCP tool has no parents filter
        return [h.id for h in home.cube("default").search({"query": "shoes", "parents": [goal]}, now=NOW).hits]

    goal, task = await _task_with_everything(client)
    assert task in await search_ids(client, "running shoes", overdue=True, now=NOW)
    assert task in await search_ids(client, "which tasks are overdue?", now=NOW)
    assert task in serving(goal)

    await ok(client, "memory_update", id=task, clear=["due_at", "parent_id"])
    assert task not in await search_ids(client, "running shoes", overdue=True, now=NOW)
    assert task not in await search_ids(client, "which tasks are overdue?", now=NOW)
    assert task not in serving(goal)
    assert task in await search_ids(client, "running shoes", now=NOW)  # still found, just not overdue


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"clear": ["text"]}, "text cannot be cleared: every memory has a text"),
        ({"clear": ["state"]}, "state cannot be cleared"),
        ({"clear": ["importance"]}, "importance cannot be cleared"),
        ({"clear": ["tags"]}, "give tags: [] to remove every tag"),
        ({"clear": ["due"]}, "no field 'due' to clear (did you mean due_at?); clearable fields are occurred_at, due_at"),
        ({"clear": ["due_at"], "due_at": "2026-04-01"}, "due_at is both given a value and cleared"),
    ],
    ids=["text", "state", "importance", "tags", "unknown", "given-and-cleared"],
)
async def test_clear_refuses_what_cannot_be_cleared_and_changes_nothing(client, arguments, says):
    _, task = await _task_with_everything(client)
    message = await error(client, "memory_update", id=task, **arguments)
    assert says in message
    assert "errors.pydantic.dev" not in message
    stored = await get(client, task)
    assert (stored["version"], stored["due_at"]) == (1, "2026-03-10T00:00:00Z")


@pytest.mark.anyio
async def test_the_tool_schema_lists_the_clearable_fields(client):
    tool = next(t for t in (await client.list_tools()).tools if t.name == "memory_update")
    clear = tool.input_schema["properties"]["clear"]
    array = next(s for s in clear["anyOf"] if s.get("type") == "array")
    assert array["items"]["enum"] == list(CLEARABLE_FIELDS)
    assert "keeps it" in clear["description"] and "due_at" in clear["description"]
    assert 'clear: ["due_at"]' in tool.description


# -- the browser's API -----------------------------------------------------------------------


@pytest.fixture
def ui(home):
    with seeded_ui(home) as running:
        yield running


def test_the_ui_patch_clears_fields_and_history_says_so(ui, home):
    task = ui.ids["Write the Apollo release notes"]  # due 2026-01-05, role work: overdue
    cube = home.cube("default")
    assert task in [h.id for h in cube.search({"query": "release notes", "overdue": True}, now=NOW).hits]

    status, answer = ui.call("PATCH", f"/api/cubes/default/memories/{task}", body={"clear": ["due_at", "role"]})
    assert status == 200, answer
    assert (answer["memory"]["due_at"], answer["memory"]["role"], answer["memory"]["version"]) == (None, None, 2)
    latest = answer["history"][-1]
    assert latest["client"] == "memcube-ui"
    assert latest["changes"] == {
        "due_at": {"old": "2026-01-05T00:00:00Z", "new": None},
        "role": {"old": "work", "new": None},
    }
    stored = cube.get([task])[0]
    assert (stored.due_at, stored.role, stored.state) == (None, None, "todo")
    assert task not in [h.id for h in cube.search({"query": "release notes", "overdue": True}, now=NOW).hits]


def test_the_ui_patch_refuses_a_field_that_cannot_be_cleared(ui, home):
    task = ui.ids["Write the Apollo release notes"]
    status, answer = ui.call("PATCH", f"/api/cubes/default/memories/{task}", body={"clear": ["type"]})
    assert status == 400
    assert "type cannot be cleared" in answer["error"]
    assert home.cube("default").get([task])[0].version == 1


# -- the CLI -------------------------------------------------------------------------------------

MEMCUBE = Path(sys.executable).with_name("memcube")
COMMAND = [str(MEMCUBE)] if MEMCUBE.is_file() else [sys.executable, "-m", "server"]


def memcube(home: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*COMMAND, "--home", str(home), *arguments], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow  # two console-script starts that load the model, as test_cli_commands' slow ones
def test_memcube_update_clear(tmp_path):
    added = memcube(tmp_path, "add", "Renew the passport", "--type", "task", "--due-at", "2026-01-02", "--role", "home")
    assert added.returncode == 0, added.stderr
    memory_id = added.stdout.split()[0]
    done = memcube(tmp_path, "update", memory_id, "--clear", "due_at", "--clear", "role", "--json")
    assert done.returncode == 0, done.stderr
    memory = json.loads(done.stdout)
    assert (memory["due_at"], memory["role"], memory["state"], memory["version"]) == (None, None, "todo", 2)
    refused = memcube(tmp_path, "update", memory_id, "--clear", "text")
    assert refused.returncode == 2 and "text cannot be cleared" in refused.stderr and "Traceback" not in refused.stderr
