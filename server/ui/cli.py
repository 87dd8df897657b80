"""``memcube ui``: the subcommand that starts the memory browser."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_ui(args: argparse.Namespace) -> int:
    from .app import serve_ui
    from .security import UiConfigError

    try:
        serve_ui(args.home, host=args.host, port=args.port, open_browser=not args.no_open)
    except UiConfigError as exc:
        print(f"memcube: {exc}", file=sys.stderr)
        return 2
    return 0


def register(commands: Any) -> None:
    ui = commands.add_parser("ui", help="browse, correct and forget memories in your web browser (on this computer only)")
    ui.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data directory")
    ui.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.1, ::1 or localhost)")
    ui.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    ui.add_argument("--no-open", action="store_true", help="print the address instead of opening the browser")
    ui.set_defaults(func=cmd_ui)
