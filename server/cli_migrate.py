"""``memcube migrate --to URL``: copy the data folder's cubes into a PostgreSQL store.

memcube migrate --to postgresql://memcube@db.example/memcube [--cube NAME]

Each cube is copied whole (``memory.store.postgres.cube_copy``): ids, versions, vectors,
entities, relations, history. The copy is resumable and incremental: run the same command
again after an interruption, or after the folder was written since, and it carries only what
is not in the store yet. The folder is only read, except that relations a cube from before
schema 11 has not yet read from its older memories' texts are read (and kept) first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .cli_output import fail
from .cli_progress import ProgressBar


def register(commands: Any) -> None:
    migrate = commands.add_parser("migrate", help="copy the data folder's cubes into a PostgreSQL store (resumable)")
    migrate.add_argument(
        "--to",
        nargs="?",
        const="",
        required=True,
        metavar="URL",
        help="the store, postgresql://user@host/db (without URL: MEMCUBE_STORE); the password comes from PGPASSWORD "
        "or ~/.pgpass, never the command line",
    )
    migrate.add_argument("--cube", default=None, help="copy this cube only (default: every cube)")
    migrate.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data directory")
    migrate.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from memory import MemoryHome
    from memory.config import setting

    url = args.to or setting("MEMCUBE_STORE")
    if not url:
        fail("--to needs a URL (postgresql://user@host/db) or MEMCUBE_STORE")
        return 2
    try:
        from memory.store.postgres import migrate as migrate_schema
        from memory.store.postgres.connect import connect, redacted, refuse_password_on_command_line
        from memory.store.postgres.cube_copy import copy_cube
    except ImportError:
        fail("the PostgreSQL store needs the postgres extra: pip install 'memcube-mcp[postgres]'")
        return 2
    if args.to:
        refuse_password_on_command_line(args.to)
    home = MemoryHome(getattr(args, "home", None), folder_only=True)
    try:
        names = home.cube_names()
        if args.cube_given and args.cube not in names:
            fail(f"no cube named {args.cube!r} in {home.root}")
            return 2
        with connect(url) as conn:
            migrate_schema(conn)
            for name in [args.cube] if args.cube_given else names:
                cube = home.cube(name)
                # Relations not yet read from older memories' texts (schema 11) are read first: the
                # store's cubes never wait for that reading.
                if cube.folder_store.meta("relations_unread_below") is not None:
                    print(f"cube {name}: reading relations from older memories first", file=sys.stderr)
                    cube.read_old_relations()
                bar = ProgressBar(f"cube {name}")
                try:
                    report = copy_cube(cube.folder_store, conn, name, progress=bar)
                except KeyboardInterrupt:
                    bar.close()
                    fail(f"copy of cube {name!r} interrupted: what was copied stays; run the same command again to go on")
                    raise
                bar.close()
                statuses = ", ".join(f"{n} {status}" for status, n in sorted(report.by_status.items())) or "empty"
                history = sum(report.logs.values())
                purged = f", {report.purged} purged since the last copy" if report.purged else ""
                print(
                    f"copied cube '{name}' to {redacted(url)}: {report.memories} memories written, "
                    f"{history} history entries{purged}; the store now holds {statuses}"
                )
    finally:
        home.close()
    print("the data folder is unchanged; run the same command again to carry later changes", file=sys.stderr)
    return 0
