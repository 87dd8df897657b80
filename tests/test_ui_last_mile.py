"""The memory browser's API for issue 30's "last mile": adding a memory, the form choices, the
graph's starting list, the latest changes with their memory's text, and no working-set dead end.

Over a real loopback socket, against a real home (SQLite, Kuzu, the ONNX embedder). A new write
(POST /memories) goes through the same guard as PATCH: no token, a wrong token, a cross-origin
or form post, a read-only or hidden cube and bad input are each refused, and nothing is added.
"""

from __future__ import annotations

import pytest
from ui_support import running_ui, seed, seeded_ui

from memory import MemoryHome
from memory.models import KNOWN_TYPES, STATES


@pytest.fixture
def ui(home):
    with seeded_ui(home) as running:
        yield running


def _count(home: MemoryHome, cube: str = "default") -> int:
    return home.cube(cube).count({"status": "any"})


def test_a_memory_is_added_as_memory_add_adds_it(ui, home):
    body = {
        "text": "Renew the team's conference tickets",
        "type": "task",
        "state": "in_progress",
        "tags": ["work", "travel"],
        "role": "work",
        "due_at": "2027-02-01",
        "occurred_at": "2026-12-01T09:30:00Z",
    }
    status, answer = ui.call("POST", "/api/cubes/default/memories", body=body)
    assert status == 200, answer
    assert answer["outcome"]["created"] is True
    stored = home.cube("default").get([answer["outcome"]["id"]])[0]
    assert (stored.text, stored.type, stored.state, stored.role) == (body["text"], "task", "in_progress", "work")
    assert stored.tags == ["work", "travel"] and stored.client == "memcube-ui"
    assert (stored.due_at, stored.occurred_at) == ("2027-02-01T00:00:00Z", "2026-12-01T09:30:00Z")
    assert answer["memory"]["id"] == stored.id and answer["history"][0]["client"] == "memcube-ui"


def test_an_added_preference_supersedes_as_over_mcp(ui, home):
    old = ui.ids["Alice prefers tea over coffee in the morning"]
    body = {
        "text": "Alice now drinks black coffee in the morning",
        "type": "preference",
        "subject": "morning drink",
        "role": "home",
    }
    status, answer = ui.call("POST", "/api/cubes/default/memories", body=body)
    assert status == 200, answer
    assert [s["id"] for s in answer["outcome"]["superseded"]] == [old]
    assert home.cube("default").get([old])[0].status == "archived"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"text": "x", "type": "recipe"}, "unknown type 'recipe'"),  # not declared in config.toml
        ({"text": "x", "type": "task", "state": "finished"}, "state is one of todo, in_progress, blocked, done"),
        ({"text": "x", "type": "note", "state": "done"}, "a note does not"),
        ({"text": "x", "importance": "0.5"}, "importance"),  # JSON types as they are, as over MCP
        ({"text": "x", "due_at": "next tuesday"}, "ISO 8601"),
        ({"text": "x", "owner": "me"}, "owner"),  # no other keys
        ({"text": "   "}, "text"),
        ({"type": "note"}, "text"),
    ],
)
def test_bad_input_is_a_clear_400_and_adds_nothing(ui, home, body, says):
    before = _count(home)
    status, answer = ui.call("POST", "/api/cubes/default/memories", body=body)
    assert status == 400, answer
    assert says in answer["error"], answer
    assert _count(home) == before


def test_an_add_without_the_token_or_from_elsewhere_adds_nothing(ui, home):
    before = _count(home)
    path = "/api/cubes/default/memories"
    body = {"text": "Injected by another page"}
    for token in (None, "wrong"):
        status, _ = ui.call("POST", path, body=body, token=token)
        assert status == 401
    status, _ = ui.call("POST", path, body=body, headers={"Origin": "http://evil.example"})
    assert status == 403
    status, _ = ui.call("POST", path, body=body, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _ = ui.call("POST", path, data=b"text=Injected", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, _ = ui.call("POST", path, data=b'{"text": "\\ud800 lone"}', headers={"Content-Type": "application/json"})
    assert status == 400
    assert _count(home) == before


def test_an_add_to_a_read_only_or_hidden_cube_is_refused(tmp_path, shared_embedder):
    (tmp_path / "config.toml").write_text(
        '[access]\ndefault = "write"\n\n[access.clients."memcube-ui"]\n"*" = "write"\nprivate = "none"\nshared = "read"\n'
    )
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        seed(home, "private")
        home.cube("shared", create=True).add([{"text": "The team meets on Tuesdays"}], client="t")
        before = {name: _count(home, name) for name in ("private", "shared")}
        with running_ui(home) as ui:
            answers = {}
            for name in ("private", "shared", "nosuchcube"):
                status, answer = ui.call("POST", f"/api/cubes/{name}/memories", body={"text": "Planted"})
                assert status == 403, (name, answer)
                answers[name] = answer["error"]
        assert "may not write" in answers["shared"]
        assert answers["private"].replace("private", "X") == answers["nosuchcube"].replace("nosuchcube", "X")
        assert {name: _count(home, name) for name in ("private", "shared")} == before
        assert "nosuchcube" not in home.cube_names()
    finally:
        home.close()


def test_the_form_choices_are_the_models_own(tmp_path, shared_embedder):
    (tmp_path / "config.toml").write_text('[types]\ncustom = ["recipe"]\n')
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        seed(home)
        with running_ui(home) as ui:
            status, choices = ui.call("GET", "/api/cubes/default/choices")
            assert status == 200, choices
            assert choices["types"] == [*KNOWN_TYPES, "recipe"]
            assert choices["states"] == {t: list(s) for t, s in STATES.items()}
            assert choices["roles"] == ["home", "work"]
            # The custom type the form offers is one the add takes.
            status, answer = ui.call(
                "POST", "/api/cubes/default/memories", body={"text": "Pancakes: flour, eggs, milk", "type": "recipe"}
            )
            assert status == 200 and answer["memory"]["type"] == "recipe"
    finally:
        home.close()


def test_the_graph_starts_from_the_most_mentioned_entities(ui):
    status, answer = ui.call("GET", "/api/cubes/default/entities")
    assert status == 200, answer
    top = answer["entities"]
    # Alice: the tea, the agenda and Project Apollo (a name opening a sentence counts); Bob:
    # Project Apollo, Carol's father and the dinner. Equal counts come in name order.
    assert top[:2] == [{"name": "Alice", "memories": 3}, {"name": "Bob", "memories": 3}]
    names = [e["name"] for e in top]
    assert {"Alice", "Carol", "Project Apollo", "Lisbon"} <= set(names)
    counts = [e["memories"] for e in top]
    assert counts == sorted(counts, reverse=True)


def test_the_latest_changes_carry_the_memorys_text(ui, home):
    kept = ui.ids["The quarterly report is due every March"]
    gone = ui.ids["Dinner with Carol and Bob at the harbour"]
    ui.call("PATCH", f"/api/cubes/default/memories/{kept}", body={"importance": 0.9})
    ui.call("POST", f"/api/cubes/default/memories/{gone}/purge", body={})
    status, activity = ui.call("GET", "/api/cubes/default/activity")
    assert status == 200, activity
    by_id = {}
    for change in activity["recent"]:
        by_id.setdefault(change["memory_id"], change)
    assert by_id[kept]["text"] == "The quarterly report is due every March" and by_id[kept]["status"] == "active"
    assert by_id[gone]["op"] == "purge" and not by_id[gone]["text"]  # a purge leaves no text to show
    long = "A very long memory " + "with many words " * 30
    home.cube("default").add([{"text": long}], client="t")
    status, activity = ui.call("GET", "/api/cubes/default/activity")
    shown = activity["recent"][0]["text"]
    assert shown.endswith("…") and len(shown) <= 160 and long.startswith(shown[:-1])


def test_the_working_set_dead_end_is_gone(ui):
    status, _ = ui.call("GET", "/api/cubes/default/working-set")
    assert status == 404
    import urllib.request

    with urllib.request.urlopen(ui.base + "/") as response:
        page = response.read().decode()
    assert "working-set" not in page and 'href="#/add"' in page
