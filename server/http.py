"""``memcube serve --http HOST:PORT``: the MCP server over streamable HTTP.

The endpoint is ``http://HOST:PORT/mcp`` (the SDK's streamable HTTP transport, with
sessions). It is safe by default:

- it binds the loopback address (``127.0.0.1:8765``) unless told otherwise;
- DNS-rebinding protection is on: a request whose ``Host`` (or ``Origin``) header does not
  name the bound address is refused, so a web page cannot reach the server through a
  hostname it controls;
- every request must carry ``Authorization: Bearer <token>``, on loopback too (issue 26:
  another local user can reach a loopback port). The tokens come from the token file
  (``server.tokens``) or ``MEMCUBE_HTTP_TOKEN``; when neither gives one, a token is made
  for the home (``<home>/http-tokens.toml``, 0600) and printed once on stderr.
  ``--no-auth`` turns this off, on loopback only, with a warning;
- each session belongs to the principal whose token opened it: another principal's
  session id is answered 404, as if unknown (the SDK compares ``scope["user"]``, which the
  token guard sets); a principal may hold ``MAX_SESSIONS_PER_PRINCIPAL`` open sessions,
  the server ``MAX_SESSIONS`` in all;
- a message whose ``id`` is not a string or an integer gets a JSON-RPC error
  (-32600, ``id`` null), not silence.

``build_app`` returns the ASGI application, so a later transport feature (OAuth, more
routes, TLS behind a proxy) wraps or extends it here without touching the CLI.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tokens import Principals, TokenFileError, ensure_token_file, load_principals, token_file_path

log = logging.getLogger(__name__)

TOKEN_ENV = "MEMCUBE_HTTP_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_BIND = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
MCP_PATH = "/mcp"
LOOPBACK_NAMES = ("localhost",)
# About 35 KB each (issue 26 measured 1,500 sessions at +53 MB): these bound it to a few MB.
MAX_SESSIONS = 256
MAX_SESSIONS_PER_PRINCIPAL = 32
INVALID_REQUEST = -32600


class HttpConfigError(ValueError):
    """The HTTP transport was asked for something unsafe or malformed; the message says what to change."""


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def wildcard(self) -> bool:
        return self.host in ("0.0.0.0", "::")

    @property
    def authority(self) -> str:
        """The host:port a client puts in the Host header."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}{MCP_PATH}"


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_bind(value: str | None) -> Bind:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``PORT`` or ``HOST`` (default port) into a Bind."""
    text = (value or DEFAULT_BIND).strip()
    host, port_text = DEFAULT_HOST, str(DEFAULT_PORT)
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        host = inner
        if rest:
            if not rest.startswith(":"):
                raise HttpConfigError(f"cannot read {value!r}: write [IPv6]:PORT, e.g. [::1]:8765")
            port_text = rest[1:]
    elif text.isdigit():
        port_text = text
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        host = host or DEFAULT_HOST
    elif ":" in text:
        raise HttpConfigError(f"cannot read {value!r}: put an IPv6 address in brackets, e.g. [::1]:8765")
    else:
        host = text
    try:
        port = int(port_text)
    except ValueError:
        raise HttpConfigError(f"cannot read the port in {value!r}: give HOST:PORT, e.g. 127.0.0.1:8765") from None
    if not 1 <= port <= 65535:
        raise HttpConfigError(f"port {port} is out of range: use 1-65535")
    if not host:
        raise HttpConfigError(f"no host in {value!r}: give HOST:PORT, e.g. 127.0.0.1:8765")
    return Bind(host, port)


def check_exposure(bind: Bind, token: str | bool | None) -> None:
    """Refuse to serve memories beyond this computer without a token."""
    if not bind.loopback and not token:
        raise HttpConfigError(
            f"refusing to listen on {bind.host}, which other computers can reach, without a bearer token: "
            f"give each client a token in a token file (see README, 'Over HTTP') or set {TOKEN_ENV} to a long random secret "
            "(clients then send 'Authorization: Bearer <token>'), "
            f"or bind a loopback address such as {DEFAULT_HOST}"
        )


def transport_security(bind: Bind) -> Any:
    """DNS-rebinding protection: the Host header must name the bound address (and loopback aliases)."""
    from mcp.server.transport_security import TransportSecuritySettings

    if bind.wildcard:
        # Listening on every interface: there is no single name to check, the token guards it.
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = [bind.authority]
    if bind.loopback:
        hosts += [f"{alias}:{bind.port}" for alias in ("127.0.0.1", "localhost", "[::1]")]
    hosts = list(dict.fromkeys(hosts))
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts],
    )


class BearerTokenGuard:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>`` of a known principal.

    The principal is put in the request's state (``memcube_principal``); access control
    reads it there, so over HTTP a caller is who its token says, whatever ``clientInfo`` says.
    """

    def __init__(self, app: Any, principals: Principals | str) -> None:
        self.app = app
        self.principals = principals if isinstance(principals, Principals) else load_principals(None, principals)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            principal = self.principals.principal(given)
            if principal is None:
                body = b'{"error": "unauthorized: send Authorization: Bearer <token>, a token of <home>/http-tokens.toml or MEMCUBE_HTTP_TOKEN"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="memcube"'),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            scope = {
                **scope,
                "state": {**(scope.get("state") or {}), "memcube_principal": principal},
                # The SDK binds each session to scope["user"]: a request for a session another
                # principal opened is answered 404, as if the session did not exist.
                "user": _authenticated(principal),
            }
        await self.app(scope, receive, send)


def _authenticated(principal: str) -> Any:
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    return AuthenticatedUser(AccessToken(token="", client_id=principal, scopes=[]))


def _principal(scope: dict[str, Any]) -> str | None:
    return (scope.get("state") or {}).get("memcube_principal")


async def _json_rpc_error(send: Any, status: int, code: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _valid_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _has_bad_id(raw: bytes) -> bool:
    """A message (or one in a batch) with an ``id`` that is not a string or an integer.

    JSON-RPC 2.0 answers such a request with Invalid Request and a null id; the SDK took it
    for a notification and answered 202 with nothing. Bodies that do not parse are left to
    the SDK, which answers them with a parse error.
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    for message in data if isinstance(data, list) else [data]:
        if not isinstance(message, dict) or "id" not in message:
            continue
        if "error" in message and "method" not in message and message["id"] is None:
            continue  # an error response may carry a null id (JSON-RPC 2.0, 5.1)
        if not _valid_id(message["id"]):
            return True
    return False


class RequestIdCheck:
    """ASGI middleware: a POST whose message carries an ``id`` of the wrong type gets -32600 (HTTP 400)."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _json_rpc_error(send, 413, INVALID_REQUEST, f"the request body is larger than {self.max_body} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if _has_bad_id(raw):
            await _json_rpc_error(send, 400, INVALID_REQUEST, "Invalid Request: an id must be a string or an integer")
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class SessionLimits:
    """ASGI middleware: a principal may hold ``per_principal`` open sessions (the SDK caps the total).

    Counted from the SDK's session manager, which knows when a session ends (DELETE, idle
    timeout, crash); requests still opening a session count too, so a burst cannot slip past.
    Without authentication (``--no-auth``) every caller is the one principal ``None``.
    """

    def __init__(self, app: Any, manager: Any, per_principal: int) -> None:
        self.app = app
        self.manager = manager
        self.per_principal = per_principal
        self.opening: Counter[str | None] = Counter()

    def open_sessions(self, principal: str | None) -> int:
        # The SDK keeps the owner of each session it binds (scope["user"]) beside its transports.
        owners = getattr(self.manager, "_session_owners", {})
        if principal is None:
            return len(getattr(self.manager, "_server_instances", {})) - len(owners)
        return sum(1 for owner in owners.values() if owner.get("client_id") == principal)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        opens = (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and not any(name == b"mcp-session-id" for name, _ in scope.get("headers") or [])
        )
        if not opens:
            await self.app(scope, receive, send)
            return
        principal = _principal(scope)
        if self.open_sessions(principal) + self.opening[principal] >= self.per_principal:
            who = f"principal {principal!r}" if principal else "this server (no authentication)"
            log.warning("refusing a new session: %s holds %d already", who, self.per_principal)
            await _json_rpc_error(
                send,
                503,
                -32603,
                f"too many open sessions for {who} (at most {self.per_principal}): end unused ones "
                "(DELETE /mcp with their mcp-session-id) or wait for idle ones to expire",
                ((b"retry-after", b"60"),),
            )
            return
        self.opening[principal] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.opening[principal] -= 1


def build_app(
    mcp: Any,
    bind: Bind,
    token: str | Principals | None = None,
    *,
    max_sessions: int = MAX_SESSIONS,
    max_sessions_per_principal: int = MAX_SESSIONS_PER_PRINCIPAL,
) -> Any:
    """The ASGI app serving ``mcp`` (an MCPServer) at ``/mcp``, guarded as described above.

    ``token`` None serves without authentication (``--no-auth``; the caller checked the bind).
    """
    from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE

    check_exposure(bind, bool(token))
    app = mcp.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(bind),
        host=bind.host,
        max_sessions=max_sessions,
    )
    guarded: Any = SessionLimits(app, mcp.session_manager, max_sessions_per_principal)
    guarded = RequestIdCheck(guarded, DEFAULT_MAX_REQUEST_BODY_SIZE)
    # ``None`` alone means no authentication: an empty set of principals refuses every request.
    return BearerTokenGuard(guarded, token) if token is not None else guarded


def http_principals(home: Path, token: str | None, *, make: bool = True) -> Principals:
    """The principals over HTTP for ``home``: the token file and/or ``token``; with ``make``, a token made for the home when neither exists.

    A made token is printed once, on stderr: it is the one time the owner sees it without
    opening the file. ``serve_http`` makes one for loopback only: reaching other computers
    stays a deliberate act (a token file or ``MEMCUBE_HTTP_TOKEN`` set up for it).
    """
    try:
        path = token_file_path(home)
        if path is None and token is None and make:
            made = ensure_token_file(home)
            path = token_file_path(home)
            if made is not None:
                print(
                    f"memcube: HTTP needs a bearer token and none was set up, so one was made for this home and saved "
                    f"in {path} (readable by you only; its principal is 'local'). Clients send "
                    f"'Authorization: Bearer <token>' with:\n  {made}\n"
                    "(printed this once; it stays in that file)",
                    file=sys.stderr,
                    flush=True,
                )
        return load_principals(path, token)
    except TokenFileError as exc:
        raise HttpConfigError(str(exc)) from None


def serve_http(home: Path | None, bind_text: str | None, *, token: str | None = None, no_auth: bool = False) -> None:
    """Run the server over HTTP until interrupted.

    ``no_auth`` serves without bearer tokens: refused off loopback, warned about on loopback.
    """
    import anyio
    import uvicorn

    from memory.config import default_home

    from .app import build_server

    bind = parse_bind(bind_text)
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    principals: Principals | None = None
    if no_auth:
        if not bind.loopback:
            raise HttpConfigError(
                f"--no-auth is for loopback addresses only: {bind.host} can be reached from other computers, "
                "so every request there needs a bearer token"
            )
        print(
            "memcube: WARNING: --no-auth: any program or user on this computer can read and change every cube "
            f"through {bind.url} (no bearer token is asked for)",
            file=sys.stderr,
            flush=True,
        )
    else:
        principals = http_principals(Path(home).expanduser() if home else default_home(), token, make=bind.loopback)
        check_exposure(bind, bool(principals))
        if not principals:  # fail closed: no token found must never mean no authentication
            raise HttpConfigError(
                "no bearer token is set up for HTTP: give one in the token file (see README, 'Over HTTP') or "
                f"{TOKEN_ENV}, or pass --no-auth to serve loopback without one"
            )
    listener = _listen(bind)  # before anything says "serving": a busy port fails here, with its reason
    mcp = build_server(home)
    try:
        app = build_app(mcp, bind, principals)
        config = uvicorn.Config(app, host=bind.host, port=bind.port, log_level="warning", lifespan="on")
        print(
            f"memcube: MCP over streamable HTTP at {bind.url}"
            + (" (bearer token required)" if principals else " (no authentication)"),
            file=sys.stderr,
            flush=True,
        )
        anyio.run(lambda: uvicorn.Server(config).serve(sockets=[listener]))
    finally:
        listener.close()
        mcp.memory_home.close()


def _listen(bind: Bind) -> Any:
    import socket

    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind.host.strip("[]"), bind.port))
    except OSError as exc:
        sock.close()
        raise HttpConfigError(
            f"cannot listen on {bind.host}:{bind.port}: {exc.strerror or exc} (is another server using the port?)"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
