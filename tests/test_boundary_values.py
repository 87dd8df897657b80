"""Values at the edges (issue 26, item 12): year 9999, loose JSON types in the UI, a 100,000-deep body.

Dates: every moment from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z is stored and found;
a date whose UTC reading leaves that range, or time words read from a ``now`` that would
leave it, get a clear tool error (they ended in a bare "Error executing tool", an
OverflowError). Years below 1000 are stored with four digits, so they sort before 2023.
The UI's PATCH and progress take JSON values as the MCP tools do, and a deep body is a 400.
"""

from __future__ import annotations

import pytest
from support import add, error, get, ok
from ui_support import running_ui, seed

pytestmark = pytest.mark.anyio

END = "9999-12-31T23:59:59Z"


async def test_the_last_second_of_year_9999_is_stored_and_found(client):
    last = await add(client, "The time capsule opens", occurred_at=END)
    task = await add(client, "Open the time capsule", type="task", due_at="9999-12-31")
    assert (await get(client, last))["occurred_at"] == END
    assert (await get(client, task))["due_at"] == "9999-12-31T00:00:00Z"
    hits = (await ok(client, "memory_search", query="time capsule", since="9999-12-31", until="9999-12-31"))["hits"]
    assert last in [h["id"] for h in hits]
    found = await ok(client, "memory_search", query="time capsule", due_before=END, due_after="9999-01-01")
    assert [h["id"] for h in found["hits"]] == [task]
    words = await ok(client, "memory_search", query="what happened in December 9999")
    assert (words["time"]["since"], words["time"]["until"]) == ("9999-12-01T00:00:00Z", END)
    await ok(client, "memory_search", query="time capsule", now=END)
    profile = await ok(client, "memory_profile", now=END)
    assert profile["now"] == END
    await ok(client, "memory_profile", now="0001-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("tool", "arguments", "says"),
    [
        ("memory_add", {"text": "Late", "occurred_at": "9999-12-31T23:59:59-05:00"}, "falls outside the dates"),
        ("memory_add", {"text": "Early", "occurred_at": "0001-01-01T00:00:00+05:00"}, "falls outside the dates"),
        ("memory_add", {"text": "Due", "type": "task", "due_at": "9999-12-31T20:00:00-08:00"}, "falls outside the dates"),
        ("memory_search", {"query": "x", "since": "9999-12-31T23:59:59-01:00"}, "falls outside the dates"),
        ("memory_search", {"query": "x", "until": "9999-12-31T23:59:59-01:00"}, "falls outside the dates"),
        ("memory_search", {"query": "x", "due_before": "9999-12-31T23:59:59-01:00"}, "falls outside the dates"),
        ("memory_search", {"query": "x", "now": "9999-12-31T23:59:59-01:00"}, "falls outside the dates"),
        ("memory_search", {"query": "what happened next week", "now": END}, "falls outside the calendar"),
        ("memory_search", {"query": "what did I do tomorrow", "now": END}, "falls outside the calendar"),
        ("memory_search", {"query": "what happened last week", "now": "0001-01-01T00:00:00Z"}, "falls outside the calendar"),
        ("memory_search", {"query": "tasks due next month", "now": "9999-12-20T00:00:00Z"}, "falls outside the calendar"),
        ("memory_profile", {"now": "0001-01-01T00:00:00+01:00"}, "falls outside the dates"),
    ],
)
async def test_a_date_past_the_calendar_gets_a_clear_error(client, tool, arguments, says):
    message = await error(client, tool, **arguments)
    assert says in message, message
    await add(client, "The server still answers")  # nothing was left broken


async def test_progress_with_a_date_past_the_calendar_gets_a_clear_error(client, home):
    task = await add(client, "Renew the passport", type="task")
    assert "falls outside the dates" in await error(client, "memory_progress", id=task, due_at="9999-12-31T23:00:00-05:00")
    message = await error(client, "memory_progress", id=task, feedback={"tried": "x", "at": "9999-12-31T23:00:00-05:00"})
    assert "falls outside the dates" in message
    assert "falls outside the dates" in await error(client, "memory_update", id=task, due_at="9999-12-31T23:00:00-05:00")
    memory = home.cube().get([task])[0]
    assert (memory.version, memory.due_at, memory.feedback) == (1, None, [])


async def test_a_year_below_1000_sorts_before_later_years(client):
    old = await add(client, "The abbey was founded", occurred_at="0999-06-01")
    assert (await get(client, old))["occurred_at"] == "0999-06-01T00:00:00Z"
    hits = (await ok(client, "memory_search", query="abbey founded", until="1000-01-01"))["hits"]
    assert [h["id"] for h in hits] == [old]
    assert (await ok(client, "memory_search", query="abbey founded", since="2000-01-01"))["hits"] == []


def test_the_ui_patch_takes_json_types_as_mcp_does(home):
    memory_id = seed(home)["The quarterly report is due every March"]
    with running_ui(home) as ui:
        path = f"/api/cubes/default/memories/{memory_id}"
        for patch in (
            {"importance": "0.5"},
            {"importance": True},
            {"importance": False},
            {"occurred_at": 1700000000},
            {"tags": "work"},
            {"text": 5},
        ):
            status, answer = ui.call("PATCH", path, body=patch)
            assert status == 400, (patch, status, answer)
        status, answer = ui.call("PATCH", path, body={"importance": "0.5"})
        assert "importance" in answer["error"]
        assert home.cube().get([memory_id])[0].version == 1  # none of them changed it
        status, answer = ui.call("PATCH", path, body={"importance": 1})  # a JSON integer is a fine number, as over MCP
        assert status == 200 and answer["memory"]["importance"] == 1.0
        status, answer = ui.call("PATCH", path, body={"importance": 0.5, "occurred_at": END})
        assert status == 200 and answer["memory"]["occurred_at"] == END
        status, answer = ui.call("PATCH", path, body={"occurred_at": "9999-12-31T23:00:00-05:00"})
        assert status == 400 and "falls outside the dates" in answer["error"]


def test_the_ui_progress_takes_json_types_as_mcp_does(home):
    task = seed(home)["Write the Apollo release notes"]
    with running_ui(home) as ui:
        path = f"/api/cubes/default/memories/{task}/progress"
        for body in ({"state": 5}, {"state": "done", "purge": True}, {"feedback": {"tried": 1}}, {"due_at": 20260105}):
            status, answer = ui.call("POST", path, body=body)
            assert status == 400, (body, status, answer)
        status, answer = ui.call("POST", path, body={"due_at": "9999-12-31T23:00:00-05:00"})
        assert status == 400 and "falls outside the dates" in answer["error"]
        assert home.cube().get([task])[0].version == 1
        status, answer = ui.call("POST", path, body={"state": "done"})
        assert status == 200 and answer["state"] == "done"


def test_a_deep_ui_body_is_a_clear_400(home):
    memory_id = seed(home)["The quarterly report is due every March"]
    with running_ui(home) as ui:
        path = f"/api/cubes/default/memories/{memory_id}"
        for depth in (100_000, 1_000, 100):
            data = b'{"metadata": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
            status, answer = ui.call("PATCH", path, data=data, headers={"Content-Type": "application/json"})
            assert status == 400 and "nested deeper than" in answer["error"], (depth, status, answer)
            status, answer = ui.call("POST", f"{path}/progress", data=data, headers={"Content-Type": "application/json"})
            assert status == 400 and "nested deeper than" in answer["error"], (depth, status, answer)
        status, answer = ui.call("PATCH", path, data=b'{"text": "\\ud800 lone"}', headers={"Content-Type": "application/json"})
        assert status == 400 and "surrogate" in answer["error"]
        status, _ = ui.call("GET", path)
        assert status == 200
    assert home.cube().get([memory_id])[0].version == 1
