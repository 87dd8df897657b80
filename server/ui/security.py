"""What keeps the UI to its owner: loopback binds, a per-launch token, same-origin writes, CSP.

- The server binds to a loopback address only; anything else is refused before a socket opens.
- Every ``/api`` request carries the launch token in the ``X-MemCube-Token`` header. The token
  never appears on a command line (issue 26: ``ps`` shows those to every local user): the
  browser is opened on a one-time login address, ``/login/<nonce>``, which works once and
  for ``LOGIN_SECONDS``, and answers with a redirect to ``/#token=<token>``; the token rides
  in that fragment, which browsers never send to a server or in a Referer, and the page
  keeps it in ``sessionStorage`` (this origin, port included, only). The browser is started
  on a 0600 page that leads there (``write_login_page``), so not even the nonce is on a
  command line; were it copied anyway, it is worth nothing once used, and if used first,
  the browser's own (second) use revokes the token it gave. A custom header also forces a CORS preflight
  on any cross-origin request, which this server never approves.
- A request whose ``Host`` is not this server's loopback address is refused (DNS rebinding).
- A request that changes something must also come from this origin (``Origin`` and
  ``Sec-Fetch-Site`` when the browser sends them) and carry JSON or a file, not a form.
- Every response carries a Content-Security-Policy that allows only this origin's own scripts,
  styles and connections: the page can load nothing from outside the machine.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_HEADER = "x-memcube-token"
UI_CLIENT = "memcube-ui"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_TYPES = ("application/json", "application/octet-stream")
LOGIN_PREFIX = "/login/"
LOGIN_SECONDS = 120.0  # long enough for a browser to start cold, short enough to be of little use to anyone else

log = logging.getLogger(__name__)


class UiConfigError(Exception):
    """The UI cannot start as asked (e.g. a non-loopback address)."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _digest(nonce: str) -> bytes:
    return hashlib.sha256(nonce.encode("utf-8", "surrogatepass")).digest()


class Logins:
    """The launch token and the one-time login addresses that hand it to a browser.

    ``issue`` makes a nonce that ``redeem`` exchanges for the token once, within
    ``seconds``. A nonce presented a second time means two parties had it (it was on a
    command line): the token is replaced, so whatever the first use gave is worthless, and
    the owner is told on stderr. Only digests of the nonces are kept.
    """

    def __init__(
        self, token: str | None = None, *, seconds: float = LOGIN_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._token = token or new_token()
        self.seconds = seconds
        self._clock = clock
        self._open: dict[bytes, float] = {}  # digest -> deadline
        self._used: set[bytes] = set()
        self._lock = threading.Lock()
        self.redeemed = threading.Event()  # set at the first sign-in: the login page has served its turn

    @property
    def token(self) -> str:
        return self._token

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(32)
        with self._lock:
            self._open[_digest(nonce)] = self._clock() + self.seconds
        return nonce

    def redeem(self, nonce: str) -> tuple[str | None, str]:
        """(the token, "") for a fresh nonce; (None, why) otherwise."""
        key = _digest(nonce)
        with self._lock:
            deadline = self._open.get(key)
            if deadline is not None and self._clock() > deadline:
                return None, "this login address has expired (it works for a short time after `memcube ui` starts)"
            if deadline is not None:
                del self._open[key]
                self._used.add(key)
                self.redeemed.set()
                return self._token, ""
            if key in self._used:
                self._token = new_token()
                log.warning("a one-time login address was used twice")
                print(
                    "memcube ui: WARNING: the one-time login address was opened a second time, so someone else may have "
                    "had it; every open page is signed out. Restart `memcube ui` to sign in again.",
                    file=sys.stderr,
                    flush=True,
                )
                return None, "this login address was already used; every page it signed in is signed out now"
        return None, "unknown login address: open the address `memcube ui` printed"


def write_login_page(folder: Path, url: str) -> Path:
    """A 0600 page in ``folder`` that sends the browser on to ``url``; the browser is started on its path.

    The browser's command line is public (``ps``): with the login address on it, another
    local user polling ``ps`` could redeem it before the browser starts and read every cube
    until the browser's own use revoked the token (or for good, when no browser came). Only
    the owner can read this page, so the address never leaves the owner's processes. The
    file is made anew (O_EXCL, no link followed) under a random name.
    """
    from html import escape

    from memory.store.filemodes import FILE_MODE, private_dir

    private_dir(folder)
    quoted = escape(url, quote=True)
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
        f'<meta http-equiv="refresh" content="0;url={quoted}"><title>MemCube</title></head>'
        f'<body><a href="{quoted}">Open the MemCube memory browser</a></body></html>\n'
    )
    path = folder / f"ui-login-{secrets.token_hex(8)}.html"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(page)
    return path


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_loopback(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; refuses any address that is not loopback."""
    if not is_loopback(host):
        raise UiConfigError(
            f"refusing to serve the memory browser on {host!r}: it shows and changes personal data, so it listens "
            "on this computer only (use 127.0.0.1, ::1 or localhost)"
        )
    name = "127.0.0.1" if host == "localhost" else host.strip("[]")
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((name, port))
    except OSError as exc:
        sock.close()
        raise UiConfigError(f"cannot listen on {name}:{port}: {exc.strerror or exc}") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _own_hosts(scope: Scope) -> set[str]:
    server = scope.get("server") or ("127.0.0.1", 0)
    port = server[1]
    return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}


def refusal(scope: Scope, token: str) -> tuple[int, str] | None:
    """Why this request must be refused (status, message), or None when it may go on."""
    headers = _headers(scope)
    hosts = _own_hosts(scope)
    if headers.get("host", "") not in hosts:
        return 403, "this server answers only at its own loopback address"
    path: str = scope.get("path", "")
    if not path.startswith("/api/"):
        return None
    given = headers.get(TOKEN_HEADER, "")
    if not given:
        return 401, "no token: open the address `memcube ui` printed (it signs one browser in, once)"
    if not secrets.compare_digest(given.encode(), token.encode()):
        return 401, "wrong token: it changes at every launch; restart `memcube ui` and open the address it prints"
    if scope.get("method", "GET") not in SAFE_METHODS:
        origin = headers.get("origin")
        if origin is not None and origin.removeprefix("http://") not in hosts:
            return 403, "cross-origin request refused"
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return 403, "cross-site request refused"
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in WRITE_TYPES:
            return 415, "send JSON (application/json) or a file (application/octet-stream)"
    return None


class UiGuard:
    """ASGI middleware applying ``refusal`` to every request and the security headers to every response.

    It also answers the one-time login addresses (``/login/<nonce>``), before any route.
    """

    def __init__(self, app: ASGIApp, logins: Logins) -> None:
        self.app = app
        self.logins = logins

    @property
    def token(self) -> str:
        return self.logins.token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = refusal(scope, self.logins.token)
        if refused is None and scope.get("path", "").startswith(LOGIN_PREFIX):
            await self._login(scope, send)
            return
        if refused is not None:
            status, message = refused
            await _send_json(send, status, message)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _security_headers(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _login(self, scope: Scope, send: Send) -> None:
        if scope.get("method") != "GET":
            await _send_json(send, 405, "open the login address in a browser (GET)")
            return
        token, why = self.logins.redeem(scope["path"][len(LOGIN_PREFIX) :])
        if token is None:
            await _send_json(send, 403, why)
            return
        # 303 to the page, the token in the fragment: the page moves it to sessionStorage and
        # out of the address bar. Nothing here is cached or sent on as a Referer.
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": _security_headers([(b"location", f"/#token={token}".encode()), (b"content-length", b"0")]),
            }
        )
        await send({"type": "http.response.body", "body": b""})


async def _send_json(send: Send, status: int, message: str) -> None:
    body = ('{"error": ' + _json_string(message) + "}").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _security_headers([(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]),
        }
    )
    await send({"type": "http.response.body", "body": body})


def _security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        *headers,
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    ]


def _json_string(text: str) -> str:
    import json

    return json.dumps(text)
