"""The memory browser's Starlette app and ``serve_ui``, the launcher behind ``memcube ui``."""

from __future__ import annotations

import logging
import sys
import threading
import webbrowser
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from memory import MemoryHome

from .jobs import Jobs
from .routes import build_routes
from .security import LOGIN_PREFIX, LOGIN_SECONDS, Logins, UiGuard, bind_loopback, write_login_page
from .service import UiService

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DEFAULT_HOST = "127.0.0.1"


@dataclass
class UiApp:
    app: UiGuard
    service: UiService
    logins: Logins

    @property
    def token(self) -> str:
        """The launch token every ``/api`` call carries (it changes if a login address is used twice)."""
        return self.logins.token


def build_app(home: MemoryHome, *, token: str | None = None) -> UiApp:
    """The ASGI app over ``home``, guarded by ``token`` (a new random one when not given)."""
    logins = Logins(token)
    service = UiService(home)
    routes = build_routes(service, Jobs(service), STATIC)
    starlette = Starlette(routes=[*routes, Mount("/static", app=StaticFiles(directory=STATIC), name="static")])
    return UiApp(app=UiGuard(starlette, logins), service=service, logins=logins)


def launch_url(host: str, port: int, nonce: str) -> str:
    """The address to open: a one-time login (``Logins.issue``), never the token itself.

    The browser gets it through a 0600 page (``write_login_page``), not on its command line;
    it is printed for the owner, and is worth nothing once used or after ``LOGIN_SECONDS``.
    """
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{LOGIN_PREFIX}{nonce}"


def _remove_when_used(page: Path, logins: Logins) -> None:
    """The login page goes once the browser signed in, or once its address expired: it is of no use after."""
    logins.redeemed.wait(LOGIN_SECONDS)
    page.unlink(missing_ok=True)


def serve_ui(home_path: Path | None, *, host: str = DEFAULT_HOST, port: int = 0, open_browser: bool = True) -> None:
    """Serve the memory browser on loopback until interrupted. Raises ``UiConfigError`` for a bad address."""
    import uvicorn

    sock = bind_loopback(host, port)  # before anything else: a refused address opens nothing
    home = MemoryHome(home_path)
    ui = build_app(home)
    bound_host, bound_port = sock.getsockname()[:2]
    url = launch_url("127.0.0.1" if host == "localhost" else bound_host, bound_port, ui.logins.issue())
    print(
        f"MemCube memory browser for {home.root}\n  {url}\n(the address signs one browser in, once, within "
        f"{LOGIN_SECONDS:.0f} s; restart `memcube ui` for a new one. Ctrl-C stops it)",
        flush=True,
    )
    page = None
    if open_browser:  # the browser's command line names a private page, never the login address (issue 26)
        page = write_login_page(home.root, url)
        threading.Thread(target=webbrowser.open, args=(page.as_uri(),), daemon=True).start()
        threading.Thread(target=_remove_when_used, args=(page, ui.logins), daemon=True).start()
    server = uvicorn.Server(uvicorn.Config(ui.app, log_level="warning", access_log=False, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        if page is not None:
            page.unlink(missing_ok=True)
        home.close()
        print("memory browser stopped", file=sys.stderr)
