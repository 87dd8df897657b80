"""Issue 26, items 5, 6 and 12 over raw HTTP against a real ``memcube serve --http``.

5. HTTP needs a bearer token by default, loopback included: one is made for the home
   (0600) and printed once; ``--no-auth`` is loopback-only and warns; every token source
   has one minimum length.
6. A session belongs to the principal that opened it: another principal's session id is
   answered 404 and changes nothing; sessions are capped per principal and in all.
12. A message whose ``id`` is an object, a float, a boolean or null gets a JSON-RPC error
   (-32600, id null), not a silent 202.
"""

from __future__ import annotations

import http.client
import json
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attack_support import ROOT, memcube_env
from support import close_pipes

from server import http as served
from server.http import Bind, HttpConfigError, build_app, serve_http
from server.tokens import Principals, load_principals

MAX_SESSIONS_PER_PRINCIPAL = getattr(served, "MAX_SESSIONS_PER_PRINCIPAL", 32)  # before issue 26: no cap at all

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef-xyz"
RULES = """
[access]
default = "none"

[access.clients.alice]
"*" = "write"

[access.clients.bob]
work = "write"
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(home: Path, bind: str, *extra: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--http", bind, *extra],
        cwd=ROOT,
        env=memcube_env(home, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _until_serving(proc: subprocess.Popen[bytes]) -> str:
    """Stderr up to the line that says the server listens (the server is then ready)."""
    assert proc.stderr is not None
    said = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if not line:
            raise AssertionError(f"the server exited ({proc.wait()}): {''.join(said)}")
        said.append(line)
        if "streamable HTTP at" in line:
            return "".join(said)
    raise AssertionError("the server did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    close_pipes(proc)


def _request(
    port: int, method: str, message: Any = None, *, token: str | None = None, session: str | None = None, raw: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request to /mcp: status, headers (lower case) and the JSON-RPC answer (last SSE event or JSON body)."""
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if session:
        headers["Mcp-Session-Id"] = session
    body = raw if raw is not None else (json.dumps(message).encode() if message is not None else None)
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, "/mcp", body=body, headers=headers)
        response = connection.getresponse()
        got = {k.lower(): v for k, v in response.getheaders()}
        if got.get("content-type", "").startswith("text/event-stream") and method == "GET":
            return response.status, got, None  # a standing stream: its status is the answer
        text = response.read().decode()
    finally:
        connection.close()
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]
    return response.status, got, (events[-1] if events else (json.loads(text) if text.strip() else None))


def _initialize(port: int, token: str | None, name: str = "http-auth-test") -> str:
    status, headers, answer = _request(
        port,
        "POST",
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": name, "version": "1"}},
        },
        token=token,
    )
    assert status == 200 and "result" in answer, (status, answer)
    session = headers["mcp-session-id"]
    assert (
        _request(port, "POST", {"jsonrpc": "2.0", "method": "notifications/initialized"}, token=token, session=session)[0] == 202
    )
    return session


def _tools_list(port: int, token: str | None, session: str) -> tuple[int, Any]:
    status, _, answer = _request(port, "POST", {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}, token=token, session=session)
    return status, answer


@pytest.fixture(scope="module")
def two_principals(tmp_path_factory) -> Iterator[int]:
    """A server whose token file names alice (every cube) and bob (cube 'work' only)."""
    home = tmp_path_factory.mktemp("principals")
    (home / "config.toml").write_text(RULES)
    tokens = home / "http-tokens.toml"
    tokens.write_text(f'[tokens]\nalice = "{ALICE}"\nbob = "{BOB}"\n')
    tokens.chmod(0o600)
    port = _free_port()
    proc = _start(home, f"127.0.0.1:{port}")
    try:
        _until_serving(proc)
        yield port
    finally:
        _stop(proc)


# 5. a token by default, loopback included ------------------------------------------------


def test_5_loopback_http_needs_a_token_made_for_the_home_and_printed_once(tmp_path):
    home = tmp_path / "home"
    port = _free_port()
    first = _start(home, f"127.0.0.1:{port}")
    try:
        said = _until_serving(first)
        token_file = home / "http-tokens.toml"
        assert token_file.exists(), said
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        made = load_principals(token_file)
        token = next(line.strip() for line in said.splitlines() if line.startswith("  "))
        assert made.principal(f"Bearer {token}".encode()) == "local"
        status, headers, _ = _request(port, "POST", {"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert _request(port, "POST", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, token="x" * 40)[0] == 401
        session = _initialize(port, token)
        assert _tools_list(port, token, session)[0] == 200
    finally:
        _stop(first)
    kept = token_file.read_text()
    again = _start(home, f"127.0.0.1:{port}")
    try:
        said = _until_serving(again)
        assert token not in said and "was made" not in said  # printed once, when it was made
        assert token_file.read_text() == kept
        _initialize(port, token)
    finally:
        _stop(again)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something already listens on: if a bad configuration got as far as binding, it stops there."""
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen(1)
        yield int(busy.getsockname()[1])


@pytest.mark.parametrize("bind", ["0.0.0.0", "127.0.0.1"])
def test_5_a_short_token_is_refused_from_every_source(tmp_path, monkeypatch, busy_port, bind):
    monkeypatch.delenv("MEMCUBE_HTTP_TOKENS", raising=False)
    monkeypatch.setenv("MEMCUBE_HTTP_TOKEN", "x")
    with pytest.raises(HttpConfigError, match="at least 16"):
        serve_http(tmp_path, f"{bind}:{busy_port}")
    monkeypatch.delenv("MEMCUBE_HTTP_TOKEN")
    with pytest.raises(HttpConfigError, match="at least 16"):
        serve_http(tmp_path, f"{bind}:{busy_port}", token="short")
    with pytest.raises(HttpConfigError, match="at least 16"):
        serve_http(tmp_path, f"{bind}:{busy_port}", token="sixteen chars ok")  # spaces: not sendable as a bearer token
    tokens = tmp_path / "http-tokens.toml"
    tokens.write_text('[tokens]\nowner = "short"\n')
    tokens.chmod(0o600)
    with pytest.raises(HttpConfigError, match="at least 16"):
        serve_http(tmp_path, f"{bind}:{busy_port}")


def test_5_no_auth_is_refused_off_loopback(tmp_path, busy_port):
    with pytest.raises(HttpConfigError, match="loopback addresses only"):
        serve_http(tmp_path, f"0.0.0.0:{busy_port}", no_auth=True)
    assert not (tmp_path / "http-tokens.toml").exists()


def test_5_and_12_no_auth_on_loopback_warns_and_its_sessions_are_capped(tmp_path):
    port = _free_port()
    proc = _start(tmp_path / "home", f"127.0.0.1:{port}", "--no-auth")
    try:
        said = _until_serving(proc)
        assert "WARNING: --no-auth" in said and "(no authentication)" in said
        assert not (tmp_path / "home" / "http-tokens.toml").exists()
        sessions = [_initialize(port, None) for _ in range(MAX_SESSIONS_PER_PRINCIPAL)]
        status, headers, answer = _request(
            port,
            "POST",
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "n", "version": "1"}},
            },
        )
        assert status == 503 and "too many open sessions" in answer["error"]["message"]
        assert _request(port, "DELETE", session=sessions[0])[0] == 200
        _initialize(port, None)  # a slot freed by DELETE is usable again
    finally:
        _stop(proc)


# 6. sessions bound to their principal ---------------------------------------------------


def test_6_another_principals_session_id_is_unknown_and_changes_nothing(two_principals):
    port = two_principals
    alice = _initialize(port, ALICE, "alice-client")
    subscribed = _request(
        port,
        "POST",
        {"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe", "params": {"uri": "memory://home/recent"}},
        token=ALICE,
        session=alice,
    )
    assert subscribed[0] == 200 and "result" in subscribed[2], subscribed
    # Bob, holding Alice's session id: the standing stream that would carry her updates for
    # 'home' (a cube he may not read), a request on her session, and ending it: all unknown.
    assert _request(port, "GET", token=BOB, session=alice)[0] == 404
    assert _tools_list(port, BOB, alice)[0] == 404
    assert _request(port, "DELETE", token=BOB, session=alice)[0] == 404
    # Without any token it is 401 before the session is even looked at.
    assert _request(port, "DELETE", session=alice)[0] == 401
    # Alice's session is untouched: it answers, and her own DELETE ends it.
    status, answer = _tools_list(port, ALICE, alice)
    assert status == 200 and "memory_add" in {t["name"] for t in answer["result"]["tools"]}
    assert _request(port, "DELETE", token=ALICE, session=alice)[0] == 200
    assert _tools_list(port, ALICE, alice)[0] == 404


def test_6_each_principal_has_its_own_session_cap(two_principals):
    port = two_principals
    bobs = [_initialize(port, BOB) for _ in range(MAX_SESSIONS_PER_PRINCIPAL)]
    try:
        status, headers, answer = _request(
            port,
            "POST",
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}},
            },
            token=BOB,
        )
        assert status == 503 and answer["id"] is None and "'bob'" in answer["error"]["message"]
        assert headers.get("retry-after")
        alice = _initialize(port, ALICE)  # bob's sessions do not starve alice
        assert _request(port, "DELETE", token=ALICE, session=alice)[0] == 200
        assert _request(port, "DELETE", token=BOB, session=bobs.pop())[0] == 200
        bobs.append(_initialize(port, BOB))  # the freed slot is his again
    finally:
        for session in bobs:
            _request(port, "DELETE", token=BOB, session=session)


def test_6_the_server_caps_sessions_in_all(tmp_path, shared_embedder):
    import uvicorn

    from memory import MemoryHome
    from server.app import build_server

    home = MemoryHome(tmp_path, embedder=shared_embedder)
    port = _free_port()
    principals = Principals({"alice": ALICE, "bob": BOB})
    app = build_app(
        build_server(home, warm_up=False), Bind("127.0.0.1", port), principals, max_sessions=3, max_sessions_per_principal=2
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        opening = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "a", "version": "1"}},
        }
        _initialize(port, ALICE)
        _initialize(port, ALICE)
        status, _, answer = _request(port, "POST", opening, token=ALICE)
        assert status == 503 and "at most 2" in answer["error"]["message"]  # alice's own cap
        _initialize(port, BOB)
        status, _, answer = _request(port, "POST", opening, token=BOB)
        assert status == 503 and "Too many open sessions" in answer["error"]["message"]  # the server's: 3 in all
    finally:
        server.should_exit = True
        thread.join(15)
        home.close()


# 12. ids that are not strings or integers ---------------------------------------------


@pytest.mark.parametrize("bad_id", [{"a": 1}, 1.5, True, None, [1]])
def test_12_a_request_with_a_bad_id_gets_an_invalid_request_error(two_principals, bad_id):
    port = two_principals
    session = _initialize(port, ALICE)
    try:
        status, _, answer = _request(
            port, "POST", {"jsonrpc": "2.0", "id": bad_id, "method": "ping"}, token=ALICE, session=session
        )
        assert status == 400
        assert answer == {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": answer["error"]["message"]}}
        assert "string or an integer" in answer["error"]["message"]
        # Good ids still work on the same session, and a notification (no id) is still 202.
        status, _, answer = _request(
            port, "POST", {"jsonrpc": "2.0", "id": "p-1", "method": "ping"}, token=ALICE, session=session
        )
        assert status == 200 and answer == {"jsonrpc": "2.0", "id": "p-1", "result": {}}
    finally:
        _request(port, "DELETE", token=ALICE, session=session)
