"""``memcube``: the stdio MCP server and a few commands for people.

Every command takes ``--home`` (default ``$MEMCUBE_HOME`` or the platform data folder);
the memory commands take ``--cube`` (default ``default``). Output for people goes to
stdout; logs go to stderr (for ``serve``, stdout is the MCP channel and nothing else).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from memory.defaults import DEFAULT_CUBE
from memory.errors import InvalidInput

# Commands that read or change what a home already holds. Given a --home (or MEMCUBE_HOME) that
# does not exist they refuse: a mistyped path would otherwise answer from a new, empty home.
# add, import, serve and ui create the home; backup refuses a missing one itself (memory.io.backup).
NEEDS_HOME = frozenset(
    {
        "list",
        "recent",
        "search",
        "get",
        "update",
        "delete",
        "archive",
        "restore",
        "history",
        "graph",
        "alias",
        "profile",
        "progress",
        "ask",
        "stats",
        "doctor",
        "export",
    }
)

SERVE_NOTE = (
    "memcube serve: waiting for an MCP client on stdin/stdout; this is not an interactive prompt (Ctrl-C stops it). "
    "Try it with `npx @modelcontextprotocol/inspector uv run memcube serve`, or add it to a client: "
    "`uv run memcube install claude-desktop`."
)


class Parser(argparse.ArgumentParser):
    """argparse, but a mistyped option is one line naming the nearest real one, not the whole usage."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Each subcommand's parser runs this on its own arguments first, so ``self`` knows the options.
        found, extras = super().parse_known_args(args, namespace)
        for extra in extras:
            if extra.startswith("-") and extra not in ("-", "--"):
                self.unknown_option(extra.split("=", 1)[0])
        return found, extras

    def unknown_option(self, option: str) -> NoReturn:
        known = [name for action in self._actions for name in action.option_strings]
        close = difflib.get_close_matches(option, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (`{self.prog} --help` lists the options)"
        self.exit(2, f"memcube: unknown option {option}{hint}\n")


def missing_home(args: argparse.Namespace) -> str | None:
    """Why a command that needs an existing home cannot run: the home it was pointed at does not exist."""
    from memory.config import setting

    if args.command not in NEEDS_HOME:
        return None
    given = args.home if args.home is not None else setting("MEMCUBE_HOME")
    if given is None:  # the default home: as before, a first command finds it empty
        return None
    root = Path(given).expanduser()
    if root.is_dir():
        return None
    source = "--home" if args.home is not None else "MEMCUBE_HOME"
    return f"no MemCube home at {root} ({source}); `memcube add` or `memcube serve` creates one"


def _home(args: argparse.Namespace) -> Any:
    from memory import MemoryHome

    return MemoryHome(args.home)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.no_auth and not args.http:
        print(
            "memcube: --no-auth goes with --http (stdio needs no token: only the client that started it speaks)", file=sys.stderr
        )
        return 2
    if getattr(args, "http", None):
        from server.http import HttpConfigError, serve_http

        try:
            serve_http(args.home, args.http, no_auth=args.no_auth)
        except HttpConfigError as exc:
            print(f"memcube: {exc}", file=sys.stderr)
            return 2
        return 0
    from server.stdio_front import serve_stdio

    if sys.stdin.isatty():  # a person typed it; stdout is the MCP channel, so the note goes to stderr
        print(SERVE_NOTE, file=sys.stderr)
    serve_stdio(args.home)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from memory.io.backup import backup_home

    home = _home(args)
    try:
        report = backup_home(home, args.destination)
    finally:
        home.close()
    for cube, count in report.cubes.items():
        print(f"{cube}: {count} memories")
    for cube, problem in report.damaged.items():
        print(f"memcube: cube {cube} not copied, it is damaged: {problem}; `memcube doctor` says more", file=sys.stderr)
    print(f"backup written to {report.destination} (the graph is rebuilt from SQLite when the copy is first opened)")
    return 1 if report.damaged else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check each cube: SQLite integrity, vectors and FTS against memories, the graph against SQLite."""
    if args.store is not None:
        return _doctor_store(args.store)
    from memory.config import default_home, load_config

    configured = load_config(Path(args.home).expanduser() if getattr(args, "home", None) else default_home()).store.url
    if configured:  # the home's cubes live in the store: check it (the folder holds only their graphs)
        return _doctor_store(configured, from_config=True)
    from memory.doctor import check_home_cube
    from memory.doctor_checks import check_home
    from server.cli_output import progress

    home = _home(args)
    healthy = True
    try:
        print(f"home: {home.root}")
        home_report = check_home(home.root)  # before any cube is opened: opening one repairs quietly
        print(home_report.render())
        names = [args.cube] if args.cube_given else home.cube_names()
        for name in names:
            with progress(f"checking cube {name}", enabled=None if args.rebuild_graph or args.reembed else False):
                report = check_home_cube(home, name, rebuild_graph=args.rebuild_graph, reembed=args.reembed, dry_run=args.dry_run)
            healthy &= report.healthy
            print(report.render())
    finally:
        home.close()
    return 0 if healthy else 1


def _doctor_store(given: str, *, from_config: bool = False) -> int:
    """``memcube doctor --store [URL]``: check a PostgreSQL store (the URL, else MEMCUBE_STORE);
    ``from_config``: the URL is the home's ``[store] url`` (or MEMCUBE_STORE), not the command line's."""
    from memory.config import setting

    url = given or setting("MEMCUBE_STORE")
    if not url:
        print("memcube: --store needs a URL (postgresql://user@host/db) or MEMCUBE_STORE", file=sys.stderr)
        return 2
    try:
        from memory.store.postgres.connect import refuse_password_on_command_line
        from memory.store.postgres.doctor import check_store
    except ImportError:
        print("memcube: the PostgreSQL store needs the postgres extra: pip install 'memcube-mcp[postgres]'", file=sys.stderr)
        return 2
    if given and not from_config:
        refuse_password_on_command_line(given)
    report = check_store(url)
    print(report.render())
    return 0 if report.healthy else 1


def cmd_model_pull(args: argparse.Namespace) -> int:
    """Download a local model into <home>/models/; the only place MemCube reaches the network for one."""
    from memory.activation.engine import pulled_folder
    from memory.config import default_home

    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        print("memcube: huggingface_hub is not installed (it comes with mlx-lm)", file=sys.stderr)
        return 2
    from server.cli_model import offline_message, pull_refusal

    if (refusal := pull_refusal(args.model)) is not None:
        print(f"memcube: {refusal}", file=sys.stderr)
        return 2
    home = Path(args.home).expanduser() if args.home else default_home()
    target = pulled_folder(home, args.model)
    try:
        revision = HfApi().model_info(args.model, revision=args.revision).sha
        snapshot_download(args.model, revision=revision, local_dir=target)
    except Exception as exc:  # offline is normal: one line, not a traceback; exit 1 as for any failed work
        print(f"memcube: {offline_message(args.model, exc)}", file=sys.stderr)
        return 1
    (target / ".memcube-revision").write_text(revision or "unknown")
    print(f"{args.model}@{revision} -> {target}")
    print(f'use it: MEMCUBE_LOCAL_MODEL={args.model} or [local_model] path = "{args.model}" in {home / "config.toml"}')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="memcube", description="MemCube: local long-term memory for LLM assistants, over MCP.")
    parser.add_argument(
        "--home", type=Path, default=None, help="data directory (default: $MEMCUBE_HOME or the platform data folder)"
    )
    parser.add_argument(
        "--store",
        dest="store_url",
        metavar="URL",
        default=None,
        help="keep cubes in a PostgreSQL store several servers share (postgresql://user@host/db; default: [store] url in "
        "config.toml, or MEMCUBE_STORE; without one, the data folder); the password comes from PGPASSWORD or ~/.pgpass",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (to stderr)")
    parser.add_argument("--debug", action="store_true", help="show a traceback when a command fails")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_cube(p: argparse.ArgumentParser, every: bool = False) -> argparse.ArgumentParser:
        p.add_argument("--cube", default=None, help=f"cube name (default: {'every cube' if every else DEFAULT_CUBE})")
        p.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data directory")
        return p

    def with_home(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data directory")
        return p

    serve = commands.add_parser("serve", help="run the MCP server over stdio (what Claude Desktop starts)")
    serve.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data directory")
    serve.add_argument(
        "--http",
        nargs="?",
        const="127.0.0.1:8765",
        default=None,
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (default 127.0.0.1:8765); every request "
        "needs a bearer token: <home>/http-tokens.toml (made on first use) or MEMCUBE_HTTP_TOKEN",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="with --http on a loopback address: ask for no bearer token (any local user can then use every cube)",
    )
    serve.set_defaults(func=cmd_serve)

    from server import cli_memory

    cli_memory.register(commands)

    doctor = with_cube(commands.add_parser("doctor", help="check cubes and repair derived stores"), every=True)
    doctor.add_argument("--rebuild-graph", action="store_true", help="recreate the Kuzu graph from SQLite")
    doctor.add_argument("--reembed", action="store_true", help="recompute every vector with the configured model")
    doctor.add_argument(
        "--dry-run",
        action="store_true",
        help="list the memories the old supersession rule archived that the current rule keeps, without restoring them",
    )
    doctor.add_argument(
        "--store",
        nargs="?",
        const="",
        default=None,
        metavar="URL",
        help="check a PostgreSQL store instead of the data folder (without URL: MEMCUBE_STORE); the password comes "
        "from PGPASSWORD or ~/.pgpass, never the command line",
    )
    doctor.set_defaults(func=cmd_doctor)

    backup = commands.add_parser("backup", help="write a consistent copy of the home while servers run")
    backup.add_argument("destination", type=Path, help="a new (or empty) folder")
    backup.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data directory")
    backup.set_defaults(func=cmd_backup)

    model = commands.add_parser("model", help="the local model for memory_ask and activation memory")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    pull = with_home(model_commands.add_parser("pull", help="download a model from the Hugging Face hub into <home>/models/"))
    pull.add_argument(
        "model", help="a hub id, e.g. mlx-community/Qwen2.5-0.5B-Instruct-4bit or onnx-community/Qwen2.5-0.5B-Instruct"
    )
    pull.add_argument("--revision", default=None, help="a branch, tag or commit (default: main)")
    pull.set_defaults(func=cmd_model_pull)
    from server import cli_model

    cli_model.register(model_commands, with_home)

    from server import cli_portable

    cli_portable.register(commands, with_home)
    from server import cli_access, cli_migrate

    cli_migrate.register(commands)
    cli_access.register(commands)
    from server.ui import cli as ui_cli

    ui_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Whatever this process creates (cubes, Kuzu files, exports, backups) is its user's alone (issue 13).
    os.umask(0o077)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    args.cube_given = getattr(args, "cube", None) is not None
    if getattr(args, "cube", None) is None:
        args.cube = DEFAULT_CUBE
    from server.cli_output import fail, run

    if (problem := missing_home(args)) is not None:
        fail(problem)
        return 2
    if args.store_url is not None and (problem := _use_store(args.store_url)) is not None:
        fail(problem)
        return 2
    return run(args.func, args)


def _use_store(url: str) -> str | None:
    """Serve from the store ``url`` (as MEMCUBE_STORE would); the reason to refuse it, if any."""
    try:
        from memory.store.postgres.connect import refuse_password_on_command_line
    except ImportError:
        return "the PostgreSQL store needs the postgres extra: pip install 'memcube-mcp[postgres]'"
    try:
        refuse_password_on_command_line(url)
    except InvalidInput as exc:
        return str(exc)
    os.environ["MEMCUBE_STORE"] = url  # every home this process opens reads it (memory.config.load_config)
    return None


if __name__ == "__main__":
    sys.exit(main())
