"""``memcube serve --http HOST:PORT``: the MCP server over streamable HTTP.

The endpoint is ``http://HOST:PORT/mcp`` (the SDK's streamable HTTP transport, with
sessions). It is safe by default:

- it binds the loopback address (``127.0.0.1:8765``) unless told otherwise;
- DNS-rebinding protection is on: a request whose ``Host`` (or ``Origin``) header does not
  name the bound address is refused, so a web page cannot reach the server through a
  hostname it controls;
- a non-loopback address is refused unless a bearer token is configured
  (``MEMCUBE_HTTP_TOKEN``); with a token, every request must carry
  ``Authorization: Bearer <token>``, on loopback too.

``build_app`` returns the ASGI application, so a later transport feature (OAuth, more
routes, TLS behind a proxy) wraps or extends it here without touching the CLI.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tokens import Principals, TokenFileError, load_principals, token_file_path

log = logging.getLogger(__name__)

TOKEN_ENV = "MEMCUBE_HTTP_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_BIND = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
MCP_PATH = "/mcp"
LOOPBACK_NAMES = ("localhost",)


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
                body = b'{"error": "unauthorized: send Authorization: Bearer <token> (MEMCUBE_HTTP_TOKEN or the token file)"}'
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
            scope = {**scope, "state": {**(scope.get("state") or {}), "memcube_principal": principal}}
        await self.app(scope, receive, send)


def build_app(mcp: Any, bind: Bind, token: str | Principals | None = None) -> Any:
    """The ASGI app serving ``mcp`` (an MCPServer) at ``/mcp``, guarded as described above."""
    check_exposure(bind, bool(token))
    app = mcp.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=transport_security(bind), host=bind.host)
    return BearerTokenGuard(app, token) if token else app


def serve_http(home: Path | None, bind_text: str | None, *, token: str | None = None) -> None:
    """Run the server over HTTP until interrupted."""
    import anyio
    import uvicorn

    from memory.config import default_home

    from .app import build_server

    bind = parse_bind(bind_text)
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    try:
        principals = load_principals(token_file_path(Path(home).expanduser() if home else default_home()), token)
    except TokenFileError as exc:
        raise HttpConfigError(str(exc)) from None
    check_exposure(bind, bool(principals))
    listener = _listen(bind)  # before anything says "serving": a busy port fails here, with its reason
    mcp = build_server(home)
    try:
        app = build_app(mcp, bind, principals or None)
        config = uvicorn.Config(app, host=bind.host, port=bind.port, log_level="warning", lifespan="on")
        print(
            f"memcube: MCP over streamable HTTP at {bind.url}" + (" (bearer token required)" if principals else ""),
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
