"""Review of issue 26's fixes (helper R1): attacks that still got through, each against a real process.

- A home whose ``http-tokens.toml`` is a symbolic link to a missing file: the server made no
  token (the link "existed"), found none, and served loopback HTTP without authentication,
  without the ``--no-auth`` warning.
- ``memcube ui`` put the one-time login address on the browser's command line: another
  local user polling ``ps`` redeems it before the browser starts and reads every cube until
  the browser's own use revokes the token (for good, when no browser comes).
- A client refused a cube wrote into that cube whatever it liked: each refused call is kept
  there with its tool name and client name, of any length, and never pruned: 20 refused
  calls with a 1 MB tool name added 20 MB to the owner's database.
- A cube's ``memory.db`` hard-linked to another cube's (``cp -al``) was opened: one database
  under two names, which SQLite keeps two logs for, and one cube's memories served as another's.
- An archive's ``vectors.jsonl`` was spooled whole: ids that no memory has (1 MB each, kept
  in memory) and the same id's vector over and over (each written to disk): a 271 KB zip
  took 273 MB of memory, a 500 KB zip wrote 375 MB to the home's disk.
- ``memcube import`` of a fifo (sniffed, or ``--format mcp-memory``) hung for ever in open().
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from attack_support import ARCHIVE_FORMAT, INIT_PARAMS, ROOT, command_lines, memcube_env, memory_id, run_cli
from mcp import Client
from mcp.types import Implementation
from support import add, raw_db

from memory import MemoryHome
from server.app import build_server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _post(port: int, message: dict, headers: dict[str, str] | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST",
            "/mcp",
            body=json.dumps(message).encode(),
            headers={
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
                "MCP-Protocol-Version": "2025-06-18",
                **(headers or {}),
            },
        )
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_a_token_file_linked_to_nothing_never_serves_without_authentication(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "http-tokens.toml").symlink_to(tmp_path / "tokens-not-there-yet.toml")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--http", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=memcube_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        said = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            said.append(line)
            if "streamable HTTP at" in line:
                # It serves: then a request without any token must be refused.
                status, body = _post(port, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT_PARAMS})
                assert status == 401, f"served without authentication: {status} {body}; stderr: {''.join(said)}"
                break
        else:
            raise AssertionError("the server neither started nor stopped")
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=30)[1]
    text = "".join(said) + rest
    assert proc.returncode == 2, text
    assert "symbolic link to a missing file" in text and str(home / "http-tokens.toml") in text
    assert not (tmp_path / "tokens-not-there-yet.toml").exists()  # nothing written through the link


def test_the_ui_login_address_is_on_no_command_line(tmp_path):
    home = tmp_path / "home"
    started = tmp_path / "browser-started"
    browser = tmp_path / "fake-browser"
    # A browser slow to start: it lingers with its arguments visible before it would load the page.
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{started}.part" && mv "{started}.part" "{started}"\nsleep 3\n')
    browser.chmod(0o700)
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "ui", "--home", str(home), "--port", "0"],
        cwd=ROOT,
        env=memcube_env(home, BROWSER=str(browser)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the browser was not started"
            time.sleep(0.05)
        # The attacker: another local user reading `ps` while the browser starts.
        leaked = [line for line in command_lines() if "/login/" in line or "#token=" in line]
        assert not leaked, f"a login address on a command line, free to redeem first: {leaked}"
        argv = started.read_text().split()
        page = Path(argv[0].removeprefix("file://"))
        assert page.is_file() and (page.stat().st_mode & 0o777) == 0o600
        login = urlsplit(page.read_text().split("url=", 1)[1].split('"', 1)[0])
        assert login.path.startswith("/login/")
        # The owner's browser loads the page and signs in; the page is then removed.
        connection = http.client.HTTPConnection("127.0.0.1", login.port, timeout=30)
        connection.request("GET", login.path)
        response = connection.getresponse()
        assert response.status == 303 and response.getheader("location", "").startswith("/#token=")
        connection.close()
        deadline = time.monotonic() + 10
        while page.exists():
            assert time.monotonic() < deadline, "the login page outlived its use"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


RULES = """
[access]
default = "none"

[access.clients.owner]
"*" = "write"
"""


@pytest.mark.anyio
async def test_a_refused_client_cannot_fill_the_owners_cube(tmp_path, shared_embedder):
    (tmp_path / "config.toml").write_text(RULES)
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        async with Client(build_server(home, warm_up=False), client_info=Implementation(name="owner", version="1")) as owner:
            await add(owner, "The safe code is 4711", cube="secret")
        stranger = Implementation(name="s" * 10_000, version="1")  # over stdio, the client names itself
        async with Client(build_server(home, warm_up=False), client_info=stranger) as client:
            for _ in range(5):
                refused = await client.call_tool("t" * 10_000, {"cube": "secret"})
                assert refused.is_error
        store = home.cube("secret").store
        with raw_db(home.cube("secret")) as conn:
            count, longest = conn.execute(
                "SELECT count(*), max(max(length(action)), max(length(client))) FROM access_denials"
            ).fetchone()
        assert count == 5 and longest <= 200, (count, longest)
        with raw_db(home.cube("secret")) as conn:  # a long history of refusals, written at once
            conn.executemany(
                "INSERT INTO access_denials(at, client, action, need) VALUES ('2026-01-01T00:00:00Z', 's', ?, 'write')",
                [(f"tools/call memory_add #{n}",) for n in range(1_049)],
            )
        store.record_denial(client="stranger", action="tools/call memory_add #1049", need="write")
        with raw_db(home.cube("secret")) as conn:
            assert conn.execute("SELECT count(*) FROM access_denials").fetchone()[0] == 1_000
        assert store.denials(1)[0]["action"] == "tools/call memory_add #1049"  # the newest are kept
    finally:
        home.close()


@pytest.mark.anyio
async def test_a_cube_whose_database_is_a_hard_link_to_another_cubes_is_not_opened(tmp_path, shared_embedder):
    """``cp -al cubes/work cubes/copy``: one database under two names, which SQLite corrupts (a log per name)."""
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    async with Client(build_server(home, warm_up=False)) as client:
        await add(client, "The alarm code is 4711", cube="work")
    home.close()
    (tmp_path / "cubes" / "copy").mkdir(mode=0o700)
    os.link(tmp_path / "cubes" / "work" / "memory.db", tmp_path / "cubes" / "copy" / "memory.db")
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        async with Client(build_server(home, warm_up=False)) as client:
            answer = await client.call_tool("memory_search", {"query": "alarm code", "cube": "copy"})
            text = answer.content[0].text
            assert answer.is_error and "hard link" in text and "4711" not in text, text
    finally:
        home.close()
    doctor = subprocess.run(
        [sys.executable, "-m", "server", "doctor", "--home", str(tmp_path)],
        cwd=ROOT,
        env=memcube_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert doctor.returncode != 0 and doctor.stdout.count("hard link") == 2, doctor.stdout + doctor.stderr


def _written_bytes() -> int:
    """Bytes this process has written so far (every write call, before any cache)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


@pytest.mark.slow  # imports a large archive (22 s loaded); .ci/run runs it
def test_an_archives_vectors_cannot_fill_memory_or_disk(tmp_path, shared_embedder):
    from memory.io.archive import import_archive

    home = MemoryHome(tmp_path / "home", embedder=shared_embedder)
    crafted = tmp_path / "crafted.zip"
    kept = memory_id(1)
    with zipfile.ZipFile(crafted, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = {
            "format": ARCHIVE_FORMAT,
            "format_version": 1,
            "cube": "x",
            "embedding": {"model_id": shared_embedder.model_id},
        }
        archive.writestr("manifest.json", json.dumps(manifest))
        record = {
            "id": kept,
            "text": "The garden gate sticks",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
        archive.writestr("memories.jsonl", json.dumps(record) + "\n")
        with archive.open("vectors.jsonl", "w") as vectors:
            for n in range(100):  # ids of no memory, 900 KB each
                vectors.write(json.dumps({"id": "x" * 900_000 + str(n), "vector": "AAAAAA=="}).encode() + b"\n")
            for _ in range(100):  # one memory's "vector", 750 KB, again and again
                vectors.write(json.dumps({"id": kept, "vector": "A" * 1_000_000}).encode() + b"\n")
    assert crafted.stat().st_size < 1_000_000
    try:
        tracemalloc.start()
        written = _written_bytes()
        try:
            report = import_archive(home, crafted, graph=False)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        written = _written_bytes() - written
        assert report.total == 1 and home.cube("x").stats().active == 1
        assert peak < 40_000_000 and written < 40_000_000, (
            f"a {crafted.stat().st_size:,}-byte archive of one memory: {peak:,} bytes held, {written:,} bytes written"
        )
    finally:
        home.close()


@pytest.mark.parametrize("options", [(), ("--format", "mcp-memory")])
def test_importing_a_fifo_is_refused_and_never_hangs(tmp_path, options):
    fifo = tmp_path / "memory.json"
    os.mkfifo(fifo)
    try:
        done = run_cli(tmp_path / "home", "import", str(fifo), *options, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("memcube import hung on a fifo") from None
    assert done.returncode != 0 and str(fifo) in done.stderr + done.stdout, done
    assert "Traceback" not in done.stderr
