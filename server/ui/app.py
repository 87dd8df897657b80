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
from .security import UiGuard, bind_loopback, new_token
from .service import UiService

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DEFAULT_HOST = "127.0.0.1"


@dataclass
class UiApp:
    app: UiGuard
    service: UiService
    token: str


def build_app(home: MemoryHome, *, token: str | None = None) -> UiApp:
    """The ASGI app over ``home``, guarded by ``token`` (a new random one when not given)."""
    token = token or new_token()
    service = UiService(home)
    routes = build_routes(service, Jobs(service), STATIC)
    starlette = Starlette(routes=[*routes, Mount("/static", app=StaticFiles(directory=STATIC), name="static")])
    return UiApp(app=UiGuard(starlette, token), service=service, token=token)


def launch_url(host: str, port: int, token: str) -> str:
    """The address to open: the token rides in the fragment, which the browser never sends anywhere."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/#token={token}"


def serve_ui(home_path: Path | None, *, host: str = DEFAULT_HOST, port: int = 0, open_browser: bool = True) -> None:
    """Serve the memory browser on loopback until interrupted. Raises ``UiConfigError`` for a bad address."""
    import uvicorn

    sock = bind_loopback(host, port)  # before anything else: a refused address opens nothing
    home = MemoryHome(home_path)
    ui = build_app(home)
    bound_host, bound_port = sock.getsockname()[:2]
    url = launch_url("127.0.0.1" if host == "localhost" else bound_host, bound_port, ui.token)
    print(f"MemCube memory browser for {home.root}\n  {url}\n(Ctrl-C stops it; the address works until then)", flush=True)
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    server = uvicorn.Server(uvicorn.Config(ui.app, log_level="warning", access_log=False, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        home.close()
        print("memory browser stopped", file=sys.stderr)
