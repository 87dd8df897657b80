"""`memcube serve --http`: MCP over streamable HTTP, loopback by default, guarded by Host checks and a token.

Every server needs a bearer token, loopback included (issue 26); the "plain" one is
loopback with a token and no other guard.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support import close_pipes

from server.http import Bind, HttpConfigError, check_exposure, parse_bind, transport_security

ROOT = Path(__file__).resolve().parents[1]
PLAIN_TOKEN = "plain-token-0123456789abcdef"
GUARDED_TOKEN = "s3cret-token-0123456789abcdef"
PLAIN = {"Authorization": f"Bearer {PLAIN_TOKEN}"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "http-test", "version": "1"}},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(home: Path, bind: str, token: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "MEMCUBE_HOME": str(home)}
    env.pop("MEMCUBE_HTTP_TOKEN", None)
    if token:
        env["MEMCUBE_HTTP_TOKEN"] = token
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--http", bind],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start listening")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two servers: one plain on loopback, one that requires a bearer token."""
    plain_port, token_port = _free_port(), _free_port()
    plain = _start(tmp_path_factory.mktemp("plain"), f"127.0.0.1:{plain_port}", token=PLAIN_TOKEN)
    guarded = _start(tmp_path_factory.mktemp("guarded"), f"127.0.0.1:{token_port}", token=GUARDED_TOKEN)
    try:
        _wait(plain_port, plain)
        _wait(token_port, guarded)
        yield {"plain": plain_port, "guarded": token_port}
    finally:
        for proc in (plain, guarded):
            proc.terminate()
            proc.wait(timeout=15)
            close_pipes(proc)


def _post(port: int, message: dict, *, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/mcp",
        data=json.dumps(message).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read().decode()
            status, got = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()
    events = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:") and line[5:].strip()]
    return status, got, (events[-1] if events else (json.loads(body) if body.strip() else None))


def test_an_mcp_session_over_http_lists_and_calls_tools(servers):
    port = servers["plain"]
    status, headers, answer = _post(port, INITIALIZE, headers=PLAIN)
    assert status == 200 and answer["result"]["serverInfo"]["name"] == "memcube"
    session = {"mcp-session-id": headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18", **PLAIN}
    assert _post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)[0] == 202
    _, _, tools = _post(port, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=session)
    assert {"memory_add", "memory_search"} <= {t["name"] for t in tools["result"]["tools"]}
    _, _, added = _post(
        port,
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "memory_add", "arguments": {"text": "Zoe kayaks on Sundays"}},
        },
        headers=session,
    )
    assert added["result"]["structuredContent"]["ids"][0].startswith("mem_")


def test_a_request_naming_another_host_is_refused(servers):
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 still sends its own Host.
    status, _, _ = _post(servers["plain"], INITIALIZE, headers={"Host": f"evil.example:{servers['plain']}", **PLAIN})
    assert status == 421
    status, _, _ = _post(servers["plain"], INITIALIZE, headers={"Origin": "http://evil.example", **PLAIN})
    assert status == 403
    status, _, _ = _post(servers["plain"], INITIALIZE, headers={"Host": f"localhost:{servers['plain']}", **PLAIN})
    assert status == 200


def test_with_a_token_every_request_needs_the_bearer_header(servers):
    port = servers["guarded"]
    status, headers, _ = _post(port, INITIALIZE)
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer")
    assert _post(port, INITIALIZE, headers={"Authorization": "Bearer wrong"})[0] == 401
    status, _, answer = _post(port, INITIALIZE, headers={"Authorization": f"Bearer {GUARDED_TOKEN}"})
    assert status == 200 and answer["result"]["serverInfo"]["name"] == "memcube"


def test_a_non_loopback_address_without_a_token_is_refused_at_start(tmp_path):
    proc = _start(tmp_path, f"0.0.0.0:{_free_port()}")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert b"refusing to listen on 0.0.0.0" in err and b"MEMCUBE_HTTP_TOKEN" in err


def test_bind_addresses_are_read_and_checked():
    assert parse_bind(None) == Bind("127.0.0.1", 8765)
    assert parse_bind("9000") == Bind("127.0.0.1", 9000)
    assert parse_bind("localhost:9001") == Bind("localhost", 9001)
    assert parse_bind("[::1]:9002") == Bind("::1", 9002)
    assert parse_bind("192.168.1.5:80").loopback is False
    for bad in ("host:notaport", "127.0.0.1:70000", "::1:80"):
        with pytest.raises(HttpConfigError):
            parse_bind(bad)
    check_exposure(Bind("127.0.0.1", 1), None)
    check_exposure(Bind("192.168.1.5", 1), "token")
    with pytest.raises(HttpConfigError, match="without a bearer token"):
        check_exposure(Bind("192.168.1.5", 1), None)


def test_allowed_hosts_are_the_bound_address():
    lan = transport_security(Bind("192.168.1.5", 8765))
    assert lan.enable_dns_rebinding_protection and lan.allowed_hosts == ["192.168.1.5:8765"]
    local = transport_security(Bind("127.0.0.1", 8765))
    assert local.allowed_hosts == ["127.0.0.1:8765", "localhost:8765", "[::1]:8765"]
