"""The last mile of the ``memcube`` CLI (issue 30), each through the installed console script.

History shows whole values; a home that does not exist is refused by the commands that read one;
archived memories say so in search and list; restoring a deleted memory says what is true (and the
browser UI says the same); a mistyped option names the right one; ``serve`` on a terminal says on
stderr what it waits for. The homes are filled in-process (the shared embedder) so that only the
command under test runs as a process.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memory import MemoryHome

ROOT = Path(__file__).resolve().parents[1]
MEMCUBE = Path(sys.executable).with_name("memcube")
COMMAND = [str(MEMCUBE)] if MEMCUBE.is_file() else [sys.executable, "-m", "server"]
ENV = {k: v for k, v in os.environ.items() if k != "MEMCUBE_HOME"}


def memcube(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**ENV, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def one_error_line(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("memcube: "), done.stderr
    return lines[0]


def test_history_shows_whole_values_on_a_wide_terminal(tmp_path, shared_embedder):
    before = "Send the quarterly report to the finance team in Zurich, with the travel costs and the new hardware budget"
    after = "Send the quarterly report to the finance team in Geneva, with the travel costs, the hardware budget and rent"
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    memory_id = home.cube(create=True).add([{"text": before, "type": "task", "due_at": "2026-03-20"}])[0].id
    home.cube().update(memory_id, {"text": after, "importance": 0.9})
    home.close()

    done = memcube("--home", str(tmp_path), "history", memory_id, env={"COLUMNS": "250"})
    assert done.returncode == 0, done.stderr
    # Each changed field on its own line, old and new value whole: what changed is there to read.
    assert f'text: "{before}" -> "{after}"' in done.stdout
    assert "importance: 0.5 -> 0.9" in done.stdout
    assert f'text: "{before}"' in done.stdout.split("\nv2")[0]  # the first version, in full
    assert "…" not in done.stdout


def test_a_home_that_does_not_exist_is_refused_by_the_commands_that_read_one(tmp_path):
    typo = tmp_path / "memcueb"
    message = one_error_line(memcube("--home", str(typo), "list"))
    assert message == f"memcube: no MemCube home at {typo} (--home); `memcube add` or `memcube serve` creates one"
    assert not typo.exists()  # and nothing was created there


@pytest.mark.slow
def test_a_missing_home_from_the_environment_is_refused_too_and_the_default_home_is_as_before(tmp_path):
    typo = tmp_path / "memcueb"
    for arguments, env in (
        (("search", "where does Ana live", "--home", str(typo)), None),
        (("stats",), {"MEMCUBE_HOME": str(typo)}),
    ):
        message = one_error_line(memcube(*arguments, env=env))
        assert f"no MemCube home at {typo}" in message and "`memcube add` or `memcube serve` creates one" in message
        assert ("MEMCUBE_HOME" if env else "--home") in message
    assert not typo.exists()  # and nothing was created there

    # The default home (no --home, no MEMCUBE_HOME) is as before: a first `list` finds it empty.
    done = memcube("list", env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert done.returncode == 0 and done.stdout.strip() == "no memories yet", done.stderr
    # add creates the home it is pointed at; list then reads it.
    assert memcube("--home", str(typo), "add", "Ana lives in Lyon").returncode == 0
    assert "Ana lives in Lyon" in memcube("--home", str(typo), "list").stdout


def test_archived_memories_say_so_in_search(tmp_path, shared_embedder):
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    cube = home.cube(create=True)
    old, new = (m.id for m in cube.add([{"text": "Ana lives in Lyon"}, {"text": "Ana lives in Marseille now"}]))
    cube.archive([old])
    home.close()

    found = memcube("--home", str(tmp_path), "search", "where does Ana live", "--include-archived", env={"COLUMNS": "200"})
    assert found.returncode == 0, found.stderr
    header, *rows = found.stdout.splitlines()
    assert header.split()[:3] == ["match", "id", "status"]
    by_id = {row.split()[1]: row.split()[2] for row in rows if len(row.split()) > 2}
    assert by_id[old] == "archived" and by_id[new] == "active"


@pytest.mark.slow
def test_list_filters_by_status(tmp_path, shared_embedder):
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    cube = home.cube(create=True)
    old, new = (m.id for m in cube.add([{"text": "Ana lives in Lyon"}, {"text": "Ana lives in Marseille now"}]))
    cube.archive([old])
    gone = cube.add([{"text": "Ana's old phone number is 0612"}])[0].id
    cube.delete([gone])
    home.close()

    archived = memcube("--home", str(tmp_path), "list", "--status", "archived")
    assert archived.returncode == 0, archived.stderr
    assert old in archived.stdout and new not in archived.stdout and "archived" in archived.stdout
    listed = json.loads(memcube("--home", str(tmp_path), "list", "--status", "any", "--json").stdout)
    assert {m["id"]: m["status"] for m in listed} == {old: "archived", new: "active", gone: "deleted"}
    assert old not in memcube("--home", str(tmp_path), "list").stdout  # the default stays the current memories


def test_restoring_a_deleted_memory_says_it_cannot_and_what_can_be_done(tmp_path, shared_embedder):
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    cube = home.cube(create=True)
    gone = cube.add([{"text": "Kim's locker code is 4417"}])[0].id
    cube.delete([gone])
    home.close()

    message = one_error_line(memcube("--home", str(tmp_path), "restore", gone))
    assert f"{gone} is deleted" in message and "only archived memories can be restored" in message
    assert "tombstone" in message and "history" in message and "added again" in message


def test_the_ui_delete_and_purge_dialogs_say_what_restore_says():
    app = (ROOT / "server" / "ui" / "static" / "app.js").read_text(encoding="utf-8")
    assert "restore from an export" not in app  # an imported tombstone stays deleted: that was not true
    assert "keeps a tombstone instead: it cannot be restored either, but its text stays in its history" in app
    assert "until it is purged; it cannot be restored (archive it instead to keep that option)" in app


def test_a_mistyped_option_names_the_right_one_in_one_line(tmp_path):
    done = memcube("--home", str(tmp_path), "add", "call the bank", "--tags", "money")
    assert one_error_line(done) == "memcube: unknown option --tags; did you mean --tag?"
    assert "usage:" not in done.stderr and done.stdout == ""


@pytest.mark.slow
def test_mistyped_options_of_other_commands(tmp_path):
    for arguments, line in (
        (("search", "bank", "--tags=money"), "memcube: unknown option --tags; did you mean --tag?"),
        (("model", "pull", "someone/model", "--revison", "main"), "memcube: unknown option --revison; did you mean --revision?"),
        (("list", "--zzz"), "memcube: unknown option --zzz (`memcube list --help` lists the options)"),
    ):
        done = memcube("--home", str(tmp_path), *arguments)
        assert one_error_line(done) == line
        assert "usage:" not in done.stderr and done.stdout == ""


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}


def read_line(stream: int, timeout: float) -> bytes:
    """One line from a raw file descriptor, or what came before ``timeout`` seconds passed."""
    got = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in got and time.monotonic() < deadline:
        if select.select([stream], [], [], 0.2)[0]:
            chunk = os.read(stream, 65536)
            if not chunk:
                break
            got += chunk
    return got


def test_serve_notes_on_stderr_only_when_a_person_typed_it(tmp_path):
    for terminal in (True, False):
        leader, follower = pty.openpty() if terminal else os.pipe()[::-1]
        proc = subprocess.Popen(
            [*COMMAND, "--home", str(tmp_path), "serve"],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=ENV,
        )
        os.close(follower)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            if terminal:
                note = read_line(proc.stderr.fileno(), 20).decode()
                assert "waiting for an MCP client" in note and "npx @modelcontextprotocol/inspector uv run memcube serve" in note
            # Then it serves as usual: stdout carries MCP and nothing else.
            os.write(leader, json.dumps(INITIALIZE).encode() + b"\n")
            answer = json.loads(read_line(proc.stdout.fileno(), 60))
            assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"]
        finally:
            proc.kill()
            _, said = proc.communicate(timeout=30)
            os.close(leader)
        if not terminal:  # an MCP client starts it with pipes: no note for it
            assert b"waiting for an MCP client" not in said
