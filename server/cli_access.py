"""``memcube access``: the access rules of a PostgreSQL store, which every server on it enforces.

memcube access show                 the rules the store holds
memcube access push                 replace them with config.toml's [access] (as the tables' owner)
memcube access grant ROLE           let the servers' own role serve cubes and only read the rules

The store is ``--store URL``, ``MEMCUBE_STORE`` or ``[store] url``. Rules live in the store so
that every server enforces the same ones; only the role that created the tables (the admin's)
may change them, so a server, whose role only reads them, cannot widen what it enforces.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .cli_output import fail


def register(commands: Any) -> None:
    access = commands.add_parser("access", help="show or set the access rules of a PostgreSQL store")
    access.add_argument("action", choices=("show", "push", "grant"), help="show the rules, push config.toml's, grant a role")
    access.add_argument("role", nargs="?", default=None, help="with grant: the database role the servers log in as")
    access.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data directory (its config.toml)")
    access.set_defaults(func=cmd_access)


def cmd_access(args: argparse.Namespace) -> int:
    from memory.config import default_home, load_config

    home = Path(args.home).expanduser() if getattr(args, "home", None) else default_home()
    config = load_config(home)
    url = config.store.url
    if not url:
        fail("no store: give --store URL (before the command), MEMCUBE_STORE, or [store] url in config.toml")
        return 2
    if args.action == "grant" and not args.role:
        fail("grant needs the role the servers log in as: memcube access grant ROLE")
        return 2
    try:
        from memory.store.postgres.access import administer
        from memory.store.postgres.connect import redacted
    except ImportError:
        fail("the PostgreSQL store needs the postgres extra: pip install 'memcube-mcp[postgres]'")
        return 2
    rules = administer(
        url, push=config.access if args.action == "push" else None, grant=args.role if args.action == "grant" else None
    )
    if args.action == "push":
        print(f"{redacted(url)} now enforces the [access] rules of {home / 'config.toml'}")
    elif args.action == "grant":
        print(f"role {args.role!r} may now serve cubes from {redacted(url)} and read (not change) its access rules")
    print(json.dumps(rules.model_dump(), indent=2))
    return 0
