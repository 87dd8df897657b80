"""Every ``memcube`` command through the console script (issue 15): output, --json round trips, errors.

Each command runs as a person runs it, in a subprocess of the installed ``memcube`` script,
on a real home. Errors must be one line on stderr with an exit code and no traceback.
A process per command takes a second or two, so the tests that run several are in the slow
tier (``pytest -m slow``); the quick tier keeps the single-process checks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from memory import MemoryHome

ROOT = Path(__file__).resolve().parents[1]
MEMCUBE = Path(sys.executable).with_name("memcube")
COMMAND = [str(MEMCUBE)] if MEMCUBE.is_file() else [sys.executable, "-m", "server"]


def memcube(
    home: Path, *arguments: str, env: dict[str, str] | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "--home", str(home), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def succeeds(home: Path, *arguments: str) -> str:
    done = memcube(home, *arguments)
    assert done.returncode == 0, (arguments, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout


def as_json(home: Path, *arguments: str) -> object:
    return json.loads(succeeds(home, *arguments, "--json"))


def fails(home: Path, *arguments: str, code: int = 2, env: dict[str, str] | None = None) -> str:
    done = memcube(home, *arguments, env=env)
    assert done.returncode == code, (arguments, done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("memcube: "), done.stderr
    return lines[0]


@pytest.mark.slow
def test_add_with_every_field_round_trips_through_get_json(tmp_path):
    goal = as_json(tmp_path, "add", "Launch the Aurora app", "--type", "goal")["ids"][0]
    added = as_json(
        tmp_path,
        "add",
        "Write the store listing for Aurora",
        "--type",
        "task",
        "--state",
        "in_progress",
        "--due-at",
        "2026-03-20",
        "--parent-id",
        goal,
        "--role",
        "work",
        "--importance",
        "0.8",
        "--tag",
        "launch",
        "--tag",
        "copy",
        "--entity",
        "Aurora",
        "--relation",
        "Marco Bianchi:reviews:store listing",
        "--metadata",
        '{"source": "standup"}',
        "--occurred-at",
        "2026-03-02",
    )
    assert added["results"][0]["created"] and added["ids"] == [added["results"][0]["id"]]
    memory = as_json(tmp_path, "get", added["ids"][0])["memories"][0]
    assert (memory["type"], memory["state"], memory["parent_id"], memory["role"]) == ("task", "in_progress", goal, "work")
    assert memory["due_at"].startswith("2026-03-20") and memory["importance"] == 0.8
    assert memory["tags"] == ["launch", "copy"] and "Aurora" in memory["entities"]
    assert memory["relations"][0]["object"] == "store listing" and memory["metadata"] == {"source": "standup"}
    # Text for a person: the fields, not JSON.
    shown = succeeds(tmp_path, "get", added["ids"][0])
    assert "state:" in shown and "in_progress" in shown and not shown.lstrip().startswith("{")
    # The add result names what a new preference supersedes.
    succeeds(tmp_path, "add", "I prefer dark mode", "--type", "preference", "--subject", "editor theme")
    replaced = as_json(tmp_path, "add", "I now prefer light mode", "--type", "preference", "--subject", "editor theme")
    assert replaced["results"][0]["superseded"]
    text = succeeds(tmp_path, "add", "I now prefer a blue theme", "--type", "preference", "--subject", "editor theme")
    assert "supersedes mem_" in text


@pytest.mark.slow
def test_errors_are_one_line_with_an_exit_code(tmp_path):
    assert "text" in fails(tmp_path, "add", "")
    assert "32000" in fails(tmp_path, "add", "x" * 33_000)
    assert "did you mean task" in fails(tmp_path, "add", "call the bank", "--type", "tsk")
    assert "not a memory id" in fails(tmp_path, "get", "mem_nope")
    assert "no cube 'nowhere'" in fails(tmp_path, "search", "anything", "--cube", "nowhere")
    assert "state" in fails(tmp_path, "search", "tasks", "--state", "blockd")
    fails(tmp_path, "add", "a task", "--type", "task", "--due-at", "not a date")
    # Without a network (offline here), pulling a model is one line, not a page of traceback.
    message = fails(tmp_path, "model", "pull", "someone/some-model", code=1)
    assert len(message) < 400
    # --debug shows the traceback for whoever needs it.
    done = memcube(tmp_path, "--debug", "get", "mem_nope")
    assert done.returncode == 2 and "Traceback" in done.stderr


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(tmp_path, shared_embedder):
    memory_home = MemoryHome(tmp_path, embedder=shared_embedder)
    memory_home.cube(create=True).add([{"text": f"note {i}: " + "words " * 150} for i in range(100)])
    memory_home.close()
    done = subprocess.run(
        f"{' '.join(COMMAND)} --home {tmp_path} list --limit 100 --json | head -c 100 > /dev/null",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "BrokenPipe" not in done.stderr and "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.slow
def test_help_lists_valid_values_and_true_defaults(tmp_path):
    add = " ".join(succeeds(tmp_path, "add", "--help").split())  # argparse wraps lines
    assert "note, fact, event, preference, goal, task" in add and "todo, in_progress, blocked, done" in add
    assert "every cube" in " ".join(succeeds(tmp_path, "stats", "--help").split())
    assert "every cube" in " ".join(succeeds(tmp_path, "doctor", "--help").split())
    assert "(default: 10)" in " ".join(succeeds(tmp_path, "search", "--help").split())
    top = succeeds(tmp_path, "--help")
    for command in (
        "list",
        "recent",
        "add",
        "search",
        "get",
        "update",
        "delete",
        "archive",
        "restore",
        "history",
        "graph",
        "alias",
        "profile",
        "progress",
        "ask",
        "stats",
    ):
        assert command in top


def test_install_uses_memcube_home_from_the_environment(tmp_path):
    env_home = tmp_path / "data"
    done = subprocess.run(
        [*COMMAND, "install", "cursor", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "HOME": str(tmp_path), "MEMCUBE_HOME": str(env_home)},
    )
    assert done.returncode == 0, done.stderr
    assert f'"MEMCUBE_HOME": "{env_home.resolve()}"' in done.stdout


def test_serve_http_on_a_busy_port_says_so_and_does_not_announce_itself(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = memcube(tmp_path, "serve", "--http", f"127.0.0.1:{port}", timeout=60)
    assert done.returncode == 2
    assert "streamable HTTP at" not in done.stderr and f"127.0.0.1:{port}" in done.stderr


@pytest.mark.slow
def test_every_command(tmp_path):
    home = tmp_path
    goal = as_json(home, "add", "Goal: run a half marathon", "--type", "goal")["ids"][0]
    task = as_json(home, "add", "Buy running shoes", "--type", "task", "--due-at", "2026-03-10", "--parent-id", goal)["ids"][0]
    fact = as_json(home, "add", "Marco Bianchi leads the backend team", "--type", "fact")["ids"][0]
    note = as_json(home, "add", "Lunch with Marco at the ramen place", "--type", "event")["ids"][0]

    listed = as_json(home, "list")
    assert {m["id"] for m in listed} == {goal, task, fact, note}
    assert "Buy running shoes" in succeeds(home, "recent")

    overdue = as_json(home, "search", "which tasks are overdue", "--now", "2026-03-18")
    assert [h["id"] for h in overdue["hits"]] == [task] and overdue["tasks"]["overdue"]
    assert [h["id"] for h in as_json(home, "search", "running", "--overdue", "--now", "2026-03-18")["hits"]] == [task]
    assert "nothing relevant found" in succeeds(home, "search", "orbital mechanics of Jupiter's moon Io")

    updated = as_json(home, "update", task, "--text", "Buy trail running shoes", "--importance", "0.9")
    assert updated["text"] == "Buy trail running shoes" and updated["version"] == 2
    assert "did you mean" in fails(home, "update", task, "--type", "tsak")

    progressed = as_json(home, "progress", task, "--state", "done", "--tried", "two shops", "--result", "bought them")
    assert progressed["state"] == "done" and progressed["feedback"][0]["result"] == "bought them"
    assert "progress is for goals and tasks" in fails(home, "progress", fact, "--state", "done")

    versions = as_json(home, "history", task)
    assert [v["op"] for v in versions["versions"]][:2] == ["add", "update"]
    assert "update" in succeeds(home, "history", task)

    graph = as_json(home, "graph", "Marco")
    assert graph["entity"] == "Marco Bianchi" and {m["id"] for m in graph["memories"]} == {fact, note}
    assert "also: Marco" in succeeds(home, "graph", "Marco")
    assert "no entity" in fails(home, "graph", "Nobody")
    assert as_json(home, "alias", "Marco")["entity"] == "marco bianchi"
    assert as_json(home, "alias", "Marco", "Marco Bianchi", "--split")["entity"] == "marco bianchi"
    assert as_json(home, "graph", "Marco")["entity"] == "Marco"

    profile = as_json(home, "profile", "--now", "2026-03-18")
    assert "half marathon" in profile["text"]
    assert "Active goals" in succeeds(home, "profile")

    archived = as_json(home, "archive", note)
    assert archived["memories"][0]["status"] == "archived"
    assert as_json(home, "restore", note)["memories"][0]["status"] == "active"
    assert "only archived memories can be restored" in fails(home, "restore", note)
    assert as_json(home, "delete", note) == {"ids": [note], "purged": False}
    assert as_json(home, "delete", fact, "--purge") == {"ids": [fact], "purged": True}

    stats = as_json(home, "stats")
    assert stats[0]["active"] == 2 and stats[0]["deleted"] == 1
    assert "active" in succeeds(home, "stats")

    # ask needs a local model: with none configured it says how to set one up, in one line.
    assert "local model" in fails(home, "ask", "what is my goal?")
    assert "does not exist" in fails(
        home, "ask", "what is my goal?", env={"MEMCUBE_LOCAL_MODEL": str(tmp_path / "no-such-model")}
    )


@pytest.mark.slow
def test_long_work_is_silent_when_piped(tmp_path, shared_embedder):
    memory_home = MemoryHome(tmp_path, embedder=shared_embedder)
    memory_home.cube(create=True).add([{"text": f"note number {i} about the garden"} for i in range(20)])
    memory_home.close()
    archive = tmp_path / "out.memcube"
    exported = memcube(tmp_path, "export", "default", str(archive))
    assert exported.returncode == 0 and exported.stderr == "" and "20 memories" in exported.stdout
    imported = memcube(tmp_path, "import", str(archive), "--cube", "copy")
    assert imported.returncode == 0 and imported.stderr == "" and "imported 20 memories" in imported.stdout


def test_a_configured_model_path_that_does_not_exist_is_named_as_such(tmp_path):
    from memory.activation.engine import resolve_model
    from memory.config import LocalModelConfig
    from memory.errors import MemCubeError

    with pytest.raises(MemCubeError, match="does not exist") as missing:
        resolve_model(LocalModelConfig(path=str(tmp_path / "no-such-model")), tmp_path)
    assert "model pull" not in str(missing.value).split(";")[0]
    with pytest.raises(MemCubeError, match="memcube model pull someone/model"):
        resolve_model(LocalModelConfig(path="someone/model"), tmp_path)  # a hub id: pulling it is the way


def test_the_bundle_leaves_hypothesis_out():
    ignored = [line.strip() for line in (ROOT / ".mcpbignore").read_text().splitlines()]
    assert ".hypothesis/" in ignored
