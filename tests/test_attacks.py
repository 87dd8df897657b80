"""The holes a hostile client and a careless operator found (issue 13), kept closed.

Each test is one numbered finding of the issue, run the way the attack ran: through a
real MCP client session, raw JSON-RPC lines to a real ``memcube serve`` process, raw
HTTP to ``memcube serve --http``, or the ``memcube`` command line.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import anyio
import pytest
from attack_support import ROOT, RawStdio, memcube_env, memory_id, run_cli, write_archive
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import Implementation
from support import add, close_pipes, error, ok

from memory import MemoryHome
from memory.errors import InvalidInput
from memory.io.archive import import_archive
from server.app import build_server

pytestmark = pytest.mark.anyio

RULES = """
[access]
default = "none"

[access.clients.owner]
"*" = "write"

[access.clients.worker]
work = "write"
"""
SECRET = "The safe code is 4471, behind the painting in the hall"


@pytest.fixture
def acl_home(tmp_path, shared_embedder):
    (tmp_path / "config.toml").write_text(RULES)
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    yield home
    home.close()


def as_client(home: MemoryHome, name: str, mode: str = "legacy", **options) -> Client:
    return Client(build_server(home, warm_up=False), mode=mode, client_info=Implementation(name=name, version="1"), **options)


async def _seed(home: MemoryHome) -> str:
    async with as_client(home, "owner") as owner:
        secret = await add(owner, SECRET, cube="home", entities=["Hall"], type="task", role="family")
        await add(owner, "Sprint review moved to Thursday", cube="work")
        await add(owner, "A cube whose name is the listing's", cube="cubes")
    return secret


# 1. Access control bypass by percent-encoding -----------------------------------------


async def test_1_a_percent_encoded_cube_name_does_not_reach_a_cube_the_client_may_not_read(acl_home, mode):
    secret = await _seed(acl_home)
    tails = ["recent", f"items/{secret}", "entities/hall", "stats", "profile", "profile/family", "tasks", "working-set"]
    async with as_client(acl_home, "worker", mode) as worker:
        assert (await worker.read_resource("memory://work/recent", cache_mode="bypass")).contents  # granted: served
        for cube in ("%68ome", "%68%6F%6D%65", "h%6fme", "%2568ome", "home%0A", "HOME", "cubes"):
            for tail in tails:
                uri = f"memory://{cube}/{tail}"
                with pytest.raises(MCPError) as refused:
                    await worker.read_resource(uri, cache_mode="bypass")
                assert (
                    "canonical" in str(refused.value)
                    or "may not read" in str(refused.value)
                    or "differs only in case" in str(refused.value)
                ), uri


# 2. A crafted archive poisons a whole cube ----------------------------------------------

POISON = {
    "tags that are not strings": {"tags": [1, {"a": 2}]},
    "an importance that is not a number": {"importance": "high"},
    "relations that are not relations": {"relations": [{"subject": 1, "object": ["x"]}, "knows"]},
    "5,000 entities": {"entities": [f"e{i}" for i in range(5000)]},
    "5,000 tags": {"tags": [f"t{i}" for i in range(5000)]},
    "2 MB of metadata": {"metadata": {"blob": "x" * 2_000_000}},
    "a version history that is not one": {"versions": [{"version": "one", "changes": 5}]},
    "a date that is not a date": {"created_at": "last tuesday-ish"},
}


@pytest.mark.parametrize("case", list(POISON))
async def test_2_an_archive_record_that_no_reader_could_serve_is_refused_and_the_cube_keeps_working(
    home, connect, tmp_path, case
):
    async with connect(home) as client:
        kept = await add(client, "Lena's piano lesson is on Wednesdays", cube="imported")
    archive = write_archive(
        tmp_path / "poison.memcube",
        [
            {"id": memory_id(1), "text": "A harmless first record"},
            {"id": memory_id(2), "text": "The poisoned record", **POISON[case]},
        ],
    )
    with pytest.raises(InvalidInput, match="memories.jsonl line 2"):
        import_archive(home, archive)
    async with connect(home) as client:
        hits = (await ok(client, "memory_search", query="piano lesson", cube="imported"))["hits"]
        assert [h["id"] for h in hits] == [kept]  # nothing of the archive was stored, search still answers
        assert (await ok(client, "memory_get", ids=kept, cube="imported"))["memories"][0]["text"].startswith("Lena")
        assert (
            json.loads((await client.read_resource("memory://imported/recent", cache_mode="bypass")).contents[0].text)[0]["id"]
            == kept
        )


@pytest.mark.slow
def test_2_memcube_import_of_a_poisoned_archive_exits_with_the_reason(tmp_path):
    archive = write_archive(tmp_path / "poison.memcube", [{"id": memory_id(7), "text": "poison", "tags": [1, {"a": 2}]}])
    result = run_cli(tmp_path / "home", "import", str(archive))
    assert result.returncode == 2, result.stderr
    assert "memories.jsonl line 1 cannot be stored: tags.0" in result.stderr


# 3 and 7. One message kills the stdio server; bad messages get no reply --------------------

BAD_LINES = [
    (
        "JSON nested 990 deep",
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"memory_search","arguments":{"query":'
        + "[" * 990
        + "]" * 990
        + "}}}",
        -32700,
    ),
    (
        "JSON nested 100 deep in params",
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"memory_search","arguments":{"query":'
        + "[" * 100
        + "]" * 100
        + "}}}",
        -32602,
    ),
    ("invalid JSON", '{"jsonrpc":"2.0","id":4,"method":', -32700),
    (
        "a lone surrogate",
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"memory_add","arguments":{"text":"\\ud800"}}}',
        -32602,
    ),
    ("a batch array", '[{"jsonrpc":"2.0","id":6,"method":"ping"}]', -32600),
    ("an object id", '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', -32600),
    ("array params", '{"jsonrpc":"2.0","id":8,"method":"tools/list","params":[1,2]}', -32602),
    ("invalid UTF-8", b'{"jsonrpc":"2.0","id":9,"method":"ping","x":"\xff\xfe"}', -32700),
]


@pytest.mark.slow
def test_3_and_7_every_bad_line_gets_its_json_rpc_error_and_the_server_lives_on(tmp_path):
    server = RawStdio(tmp_path)
    try:
        server.initialize()
        for label, line, code in BAD_LINES:
            server.send(line)
            reply = server.receive(timeout=30)
            assert reply is not None, f"{label}: no reply"
            assert reply.get("error", {}).get("code") == code, f"{label}: {reply}"
            assert server.alive(), f"{label} ended the server"
        answer = server.request(20, "tools/call", {"name": "memory_add", "arguments": {"text": "Still here after the attack"}})
        assert answer["result"]["isError"] is False
    finally:
        assert server.close() == 0


# 4. Other OS users can read every memory ------------------------------------------------


def _modes(root: Path) -> dict[str, int]:
    modes = {}
    for folder, _, files in os.walk(root):
        for path in [Path(folder)] + [Path(folder) / f for f in files]:
            modes[str(path.relative_to(root.parent))] = stat.S_IMODE(os.lstat(path).st_mode)
    return modes


async def test_4_whatever_the_umask_a_new_home_is_private(tmp_path, shared_embedder, connect):
    previous = os.umask(0o022)
    try:
        home = MemoryHome(tmp_path / "home", embedder=shared_embedder)
        async with connect(home) as client:
            await add(client, "Bank PIN reminder: ask Lena", entities=["Lena"])
            await ok(client, "memory_graph", entity="Lena")
        home.close()
    finally:
        os.umask(previous)
    modes = _modes(tmp_path / "home")
    assert "home/cubes/default/memory.db-wal" in modes or "home/cubes/default/memory.db" in modes
    assert any(name.startswith("home/cubes/default/graph/") for name in modes)  # Kuzu's files are checked too
    wide = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert wide == {}


# 5. Over HTTP, the token carries no identity --------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HttpSession:
    def __init__(self, port: int, token: str, name: str) -> None:
        self.url, self.token, self.session = f"http://127.0.0.1:{port}/mcp", token, None
        init = self.post(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": name, "version": "1"}},
            }
        )
        assert "result" in init, init
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, message: dict) -> dict | None:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {self.token}",
            "MCP-Protocol-Version": "2025-06-18",
        }
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        request = urllib.request.Request(self.url, data=json.dumps(message).encode(), method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            self.session = response.headers.get("mcp-session-id") or self.session
            body = response.read().decode()
        events = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:") and line[5:].strip()]
        return events[-1] if events else (json.loads(body) if body.strip() else None)

    def call(self, tool: str, **arguments) -> dict:
        answer = self.post({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
        assert answer is not None
        return answer["result"]


@pytest.mark.slow
def test_5_over_http_a_token_is_its_principal_whatever_client_info_says(tmp_path, shared_embedder):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(RULES)
    seeded = MemoryHome(home, embedder=shared_embedder)
    try:
        seeded.cube("home", create=True).add([{"text": SECRET}], client="owner")
    finally:
        seeded.close()
    tokens = home / "http-tokens.toml"
    tokens.write_text('[tokens]\nowner = "owner-token-0123456789abcdef"\nworker = "worker-token-0123456789abcdef"\n')
    tokens.chmod(0o600)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--http", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=memcube_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        # The worker's token, claiming to be the owner by clientInfo: still the worker.
        impostor = HttpSession(port, "worker-token-0123456789abcdef", "owner")
        refused = impostor.call("memory_search", query="safe code", cube="home")
        assert SECRET not in json.dumps(refused)
        assert refused["isError"] is True and "'worker' may not read cube 'home'" in refused["content"][0]["text"]
        assert impostor.call("memory_add", text="Sprint review moved", cube="work")["isError"] is False
        owner = HttpSession(port, "owner-token-0123456789abcdef", "anything")
        assert owner.call("memory_add", text="The boiler is serviced in May", cube="home")["isError"] is False
        with pytest.raises(urllib.error.HTTPError) as unknown:
            HttpSession(port, "not-a-token-of-anyone-at-all", "owner")
        assert unknown.value.code == 401
        unknown.value.close()  # the refused response's socket
    finally:
        server.terminate()
        server.wait(timeout=30)
        close_pipes(server)
    check = MemoryHome(home, embedder=shared_embedder)
    try:
        recorded = {m.text: m.client for m in check.cube("home").recent(5)}
        assert recorded["The boiler is serviced in May"] == "owner"  # recorded as the token's principal
    finally:
        check.close()


def test_5_a_token_file_others_can_read_is_refused_at_start(tmp_path):
    from server.http import HttpConfigError, serve_http

    tokens = tmp_path / "http-tokens.toml"
    tokens.write_text('[tokens]\nowner = "owner-token-0123456789abcdef"\n')
    tokens.chmod(0o644)
    with pytest.raises(HttpConfigError, match="chmod 600"):
        serve_http(tmp_path, "0.0.0.0:1")  # refused before it binds anything


# 6. resources/subscribe skips access control ---------------------------------------------


async def test_6_subscriptions_are_checked_like_reads(acl_home):
    await _seed(acl_home)
    heard: list[object] = []

    async def on_message(message: object) -> None:
        heard.append(message)

    async with as_client(acl_home, "worker", "legacy", message_handler=on_message) as worker:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for uri in ("memory://home/recent", "memory://%68ome/recent"):
                with pytest.raises(MCPError):
                    await worker.subscribe_resource(uri)
        async with as_client(acl_home, "owner") as owner:
            await add(owner, "The alarm code changed", cube="home")
        await anyio.sleep(0.3)
    assert [m for m in heard if type(m).__name__ == "ResourceUpdatedNotification"] == []
    async with as_client(acl_home, "worker", "auto") as worker:
        with pytest.raises(MCPError, match="may not read cube 'home'"):
            async with worker.listen(resource_subscriptions=["memory://home/recent"]):
                pass


# 8. Loose arguments ----------------------------------------------------------------------


async def test_8_arguments_are_taken_as_their_json_types_and_unknown_ones_are_named(client, home):
    memory = await add(client, "Keep this memory")
    assert "purge" in await error(client, "memory_delete", ids=memory, purge="yes")
    assert "limit" in await error(client, "memory_search", query="memory", limit=True)
    assert "include_archived" in await error(client, "memory_search", query="memory", include_archived="false")
    assert "depth" in await error(client, "memory_graph", entity="x", depth=True)
    assert "importance" in await error(client, "memory_add", text="Another", importance=True)
    message = await error(client, "memory_delete", ids=memory, purge_all=True)
    assert "'purge_all'" in message and "purge" in message
    assert home.cube().get([memory])[0].status == "active"  # none of these touched it


# 9. The WAL deleted under a running server ------------------------------------------------


async def test_9_a_deleted_write_ahead_log_stops_writes_with_the_reason(client, home):
    first = await add(client, "Written before the log went away")
    wal = home.root / "cubes" / "default" / "memory.db-wal"
    assert wal.exists()
    wal.unlink()
    message = await error(client, "memory_add", text="Written after the log went away")
    assert "memory.db-wal was deleted" in message and "stopped writing" in message
    message = await error(client, "memory_update", id=first, text="Changed after the log went away")
    assert "stopped writing" in message


async def test_9_a_replaced_database_file_stops_writes(client, home):
    await add(client, "Written before the file was replaced")
    db = home.root / "cubes" / "default" / "memory.db"
    shutil.copy(db, db.with_name("copy.db"))
    os.replace(db.with_name("copy.db"), db)
    assert "memory.db was replaced" in await error(client, "memory_add", text="Written after")


# 10. Smaller: newline in a cube name, graph/ a file, full disk, case ---------------------


async def test_10_a_cube_name_ending_in_a_newline_is_refused(client, home):
    assert "cube name 'home\\n' is not allowed" in await error(client, "memory_add", text="x", cube="home\n")
    assert "not allowed" in await error(client, "memory_search", query="x", cube="home\n")
    assert home.cube_names() == []


async def test_10_cube_names_differing_only_in_case_are_one_cube(client, home):
    await add(client, "The house keys are in the drawer", cube="home")
    for tool, arguments in [("memory_add", {"text": "Another"}), ("memory_search", {"query": "keys"})]:
        message = await error(client, tool, cube="Home", **arguments)
        assert "differs only in case from the existing cube 'home'" in message
    assert home.cube_names() == ["home"]


@pytest.mark.slow  # fills a tmpfs (45-55 s loaded per mode); .ci/run runs it
async def test_10_a_full_disk_is_reported_as_such_and_nothing_is_lost(client, home):
    kept = await add(client, "Written while there was room")
    conn = home.cube().store._conn  # the server's own connection: max_page_count is per connection
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as from a full disk
    message = await error(client, "memory_add", memories=[{"text": f"Memory {i} " + "words " * 2000} for i in range(20)])
    assert "is full" in message and "Free some space" in message
    assert (await ok(client, "memory_get", ids=kept))["memories"][0]["text"] == "Written while there was room"
    conn.execute("PRAGMA max_page_count = 1073741823")
    await add(client, "Written after space was freed")


@pytest.mark.slow
async def test_10_a_file_where_the_graph_folder_belongs_is_reported_and_the_doctor_repairs_it(tmp_path, shared_embedder, connect):
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    async with connect(home) as client:
        await add(client, "Lena plays the piano", entities=["Lena"])
        await ok(client, "memory_graph", entity="Lena")  # the graph exists and holds the memory
        graph = tmp_path / "cubes" / "default" / "graph"
        shutil.rmtree(graph)
        graph.write_text("not a folder")
        message = await error(client, "memory_graph", entity="Lena")
        assert "is not a folder" in message and "memcube doctor" in message
    home.close()
    result = run_cli(tmp_path, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 cubes had something other than a folder at graph/" in result.stdout and "moved 1 aside" in result.stdout
    assert "cube default: ok" in result.stdout
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        assert [m.text for m in home.cube().graph("Lena").memories] == ["Lena plays the piano"]
    finally:
        home.close()
