"""Issue 26, item 4: the memory browser's token is never on a command line.

``memcube ui`` used to start the browser with ``http://127.0.0.1:PORT/#token=...`` in its
arguments, which ``ps`` shows to every local user. Now the browser gets a one-time login
address (``/login/<nonce>``): it works once, for a short time, and answers with the token
in a redirect; used a second time, it revokes the token it gave.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from attack_support import ROOT, command_lines, memcube_env


def _get(port: int, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"X-MemCube-Token": token} if token else {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_4_the_browser_gets_a_one_time_login_and_never_the_token(tmp_path):
    recorded = tmp_path / "browser-argv.txt"
    browser = tmp_path / "fake-browser"
    # Records its arguments, then lingers a moment as a real browser would, so its command
    # line can be read while it runs.
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{recorded}.part" && mv "{recorded}.part" "{recorded}"\nsleep 2\n')
    browser.chmod(0o700)
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "ui", "--home", str(tmp_path / "home"), "--port", "0"],
        cwd=ROOT,
        env=memcube_env(tmp_path / "home", BROWSER=str(browser)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not recorded.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the browser was not started"
            time.sleep(0.05)
        argv = recorded.read_text().split()
        assert len(argv) == 1
        # The browser is started on a private page that leads to the login address (R1: the
        # address itself on a command line could be redeemed by whoever polls `ps` first).
        page = Path(urlsplit(argv[0]).path)
        assert argv[0].startswith("file://") and "/login/" not in argv[0], argv
        assert page.parent == tmp_path / "home" and (page.stat().st_mode & 0o777) == 0o600
        url = urlsplit(page.read_text().split("url=", 1)[1].split('"', 1)[0])
        assert url.hostname == "127.0.0.1" and url.path.startswith("/login/") and not url.fragment, argv
        assert "token" not in argv[0]
        port = url.port
        assert port is not None

        # The login answers with the token, in a redirect (never a command line).
        status, headers, _ = _get(port, url.path)
        assert status == 303 and headers["location"].startswith("/#token="), (status, headers)
        token = headers["location"].removeprefix("/#token=")
        assert len(token) >= 32 and token not in argv[0]
        assert not any(token in line for line in command_lines())
        status, _, body = _get(port, "/api/cubes", token)
        assert status == 200, body

        # Copied from `ps` after the browser used it: worthless. The second use also signs
        # out whoever the first use signed in (if it was not the owner, the owner notices).
        status, headers, body = _get(port, url.path)
        assert status == 403 and "location" not in headers and b"already used" in body
        assert _get(port, "/api/cubes", token)[0] == 401
        assert _get(port, "/login/" + "A" * 43)[0] == 403  # a guessed one is unknown
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "opened a second time" in err


def test_4_a_login_address_expires_and_works_once():
    from server.ui.security import Logins

    now = [1000.0]
    logins = Logins(seconds=120, clock=lambda: now[0])
    late, fresh = logins.issue(), logins.issue()
    token = logins.token
    now[0] += 119
    assert logins.redeem(fresh) == (token, "")
    now[0] += 2
    got, why = logins.redeem(late)
    assert got is None and "expired" in why
    assert logins.token == token  # an expired address revokes nothing
    got, why = logins.redeem(fresh)
    assert got is None and "already used" in why and logins.token != token
