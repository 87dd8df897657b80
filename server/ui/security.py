"""What keeps the UI to its owner: loopback binds, a per-launch token, same-origin writes, CSP.

- The server binds to a loopback address only; anything else is refused before a socket opens.
- Every ``/api`` request carries the launch token in the ``X-MemCube-Token`` header. The token
  reaches the page in the URL fragment, which browsers never send to a server or in a Referer.
  A custom header also forces a CORS preflight on any cross-origin request, which this server
  never approves.
- A request whose ``Host`` is not this server's loopback address is refused (DNS rebinding).
- A request that changes something must also come from this origin (``Origin`` and
  ``Sec-Fetch-Site`` when the browser sends them) and carry JSON or a file, not a form.
- Every response carries a Content-Security-Policy that allows only this origin's own scripts,
  styles and connections: the page can load nothing from outside the machine.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
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


class UiConfigError(Exception):
    """The UI cannot start as asked (e.g. a non-loopback address)."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


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
        return 401, "no token: open the address `memcube ui` printed (it carries this launch's token)"
    if not secrets.compare_digest(given.encode(), token.encode()):
        return 401, "wrong token: it changes at every launch; open the address the running `memcube ui` printed"
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
    """ASGI middleware applying ``refusal`` to every request and the security headers to every response."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = refusal(scope, self.token)
        if refused is not None:
            status, message = refused
            body = ('{"error": ' + _json_string(message) + "}").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": _security_headers(
                        [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                    ),
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _security_headers(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
