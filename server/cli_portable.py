"""The ``memcube`` commands that move MemCube around: install into clients, export, import.

memcube install claude-desktop|claude-code|cursor|vscode [--dry-run] [--home DIR]
memcube uninstall claude-desktop|claude-code|cursor|vscode [--dry-run]
memcube export CUBE FILE [--with-vectors] [--include-deleted]
memcube import FILE [--cube NAME] [--format archive|mcp-memory|markdown]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cli_output import fail
from .cli_progress import ProgressBar
from .install import CLIENTS


def _print_dry_run(change: Any) -> None:
    sys.stdout.write(change.diff())
    print(f"(dry run: {change.path} not changed)" if change.changed else "(dry run)")


def cmd_install(args: argparse.Namespace) -> int:
    from memory.config import setting

    from . import install

    # The assistant must open the same home as this shell: --home, else $MEMCUBE_HOME.
    home = getattr(args, "home", None) or setting("MEMCUBE_HOME")
    return _carry_out(
        lambda: install.plan_install(
            args.client,
            user_home=Path.home(),
            platform=sys.platform,
            env=os.environ,
            command=install.memcube_command(),
            memcube_home=Path(home).expanduser().resolve() if home else None,
        ),
        args,
        unchanged="MemCube is already installed in {path}",
        done="MemCube installed in {path}",
        then="Restart the client to load it.",
    )


def cmd_uninstall(args: argparse.Namespace) -> int:
    from . import install

    return _carry_out(
        lambda: install.plan_uninstall(args.client, user_home=Path.home(), platform=sys.platform, env=os.environ),
        args,
        unchanged="MemCube is not in {path}; nothing to do",
        done="MemCube removed from {path}",
    )


def _carry_out(plan: Callable[[], Any], args: argparse.Namespace, *, unchanged: str, done: str, then: str | None = None) -> int:
    """Plan the change, then print it (--dry-run) or write it, backing up the old file; say what happened.

    ``unchanged`` and ``done`` name the config file as ``{path}``; each is said after the client's name."""
    from . import install

    try:
        change = plan()
        if args.dry_run:
            _print_dry_run(change)
            return 0
        backup = install.apply(change)
    except install.InstallError as exc:
        print(f"memcube: {exc}", file=sys.stderr)
        return 2
    if not change.changed:
        print(f"{args.client}: {unchanged.format(path=change.path)}")
        return 0
    print(f"{args.client}: {done.format(path=change.path)}" + (f" (previous file kept as {backup.name})" if backup else ""))
    if then:
        print(then)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from memory import MemoryHome
    from memory.io.archive import export_cube

    from .cli_output import progress

    home = MemoryHome(getattr(args, "home", None))
    try:
        with progress(f"exporting cube {args.cube_name}"):
            report = export_cube(
                home.cube(args.cube_name), args.file, with_vectors=args.with_vectors, include_deleted=args.include_deleted
            )
    finally:
        home.close()
    print(
        f"exported cube '{report.cube}' to {report.path}: {report.memories} memories, {report.entities} entities, "
        f"{report.relations} relations, {report.vectors} vectors (model {report.embedding_model})"
    )
    return 0


def sniff_format(path: Path) -> str:
    """archive (a zip), markdown (a folder or .md file) or mcp-memory (JSON Lines of entities and relations)."""
    if path.is_dir() or path.suffix.lower() in (".md", ".markdown"):
        return "markdown"
    if not path.is_file():  # a fifo or a device would block the open or never end: the archive reader refuses it
        return "archive"
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return "archive"  # let the archive reader say what is wrong with the path
    return "archive" if head.startswith(b"PK") else "mcp-memory"


def cmd_import(args: argparse.Namespace) -> int:
    from memory import MemoryHome
    from memory.defaults import DEFAULT_CUBE

    path = Path(args.file)
    kind = args.format or sniff_format(path)
    home = MemoryHome(getattr(args, "home", None))
    bar = ProgressBar(path.name)
    try:
        if kind == "archive":
            from memory.io.archive import import_archive

            report = import_archive(home, path, cube=args.cube_name, progress=bar)
            bar.close()
            moved = f"; embedded {report.reembedded} with {report.cube_model}" if report.reembedded else ""
            print(
                f"imported {report.imported} memories into cube '{report.cube}' "
                f"({report.skipped_existing} already there, {report.skipped_duplicate} duplicates skipped, "
                f"{report.vectors_reused} vectors reused{moved})"
            )
            if report.resumed is not None:
                print(_resumed(report.resumed, path.name))
            if report.links_dropped:
                print(
                    f"note: dropped {report.links_dropped} supersedes/superseded_by links that pointed at no memory "
                    "of the archive or the cube, or ran round in a cycle"
                )
        else:
            from memory.io import importers

            cube = home.cube(args.cube_name or DEFAULT_CUBE, create=True)
            reader = importers.import_markdown if kind == "markdown" else importers.import_mcp_memory
            summary = reader(cube, path, progress=bar)
            bar.close()
            print(
                f"imported {summary.added} memories into cube '{summary.cube}' from {kind} {path} ({summary.already_present} already there)"
            )
            for skipped in summary.skipped:
                print(f"skipped {skipped}", file=sys.stderr)
    except KeyboardInterrupt:
        message = _interrupted(bar, kind)
        bar.close()
        fail(message)
        raise
    finally:
        home.close()
    return 0


def _resumed(earlier: dict[str, Any], name: str) -> str:
    source, started = earlier.get("source"), earlier.get("started_at")
    if source == name:
        return f"completed the unfinished import of {name} (begun {started}); each of its records is in the cube once"
    return (
        f"note: an import of {source} (begun {started}) into this cube had not finished; "
        f"run it again to import the rest of {source}"
    )


def _interrupted(bar: ProgressBar, kind: str) -> str:
    """What an interrupted import left behind, and what to do."""
    if bar.stage in (None, "checking"):
        return "import interrupted before anything was written"
    if kind != "archive":
        return "import interrupted: the memories added so far stay; importing the same file again adds only the rest"
    if bar.stage == "graph":
        return "interrupted while updating the graph: every record is imported; the next `memcube serve` applies the rest"
    total = f" of {bar.total:,}" if bar.total is not None else ""
    return (
        f"import interrupted after {bar.done:,}{total} records: those are each complete and nothing is half-written; "
        "run the same command again to import the rest"
    )


def register(commands: Any, with_home: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """Add install, uninstall, export and import to the ``memcube`` parser."""
    install = with_home(commands.add_parser("install", help="add MemCube to an MCP client's config"))
    install.add_argument("client", choices=CLIENTS)
    install.add_argument("--dry-run", action="store_true", help="print the change instead of writing it")
    install.set_defaults(func=cmd_install)

    uninstall = commands.add_parser("uninstall", help="remove MemCube from an MCP client's config")
    uninstall.add_argument("client", choices=CLIENTS)
    uninstall.add_argument("--dry-run", action="store_true", help="print the change instead of writing it")
    uninstall.set_defaults(func=cmd_uninstall)

    export = with_home(commands.add_parser("export", help="write a cube to a portable archive"))
    export.add_argument("cube_name", metavar="CUBE")
    export.add_argument("file", metavar="FILE", type=Path)
    export.add_argument(
        "--with-vectors", action="store_true", help="include the vectors (reused when the importer has the same model)"
    )
    export.add_argument("--include-deleted", action="store_true", help="include deleted memories (tombstones)")
    export.set_defaults(func=cmd_export)

    imp = with_home(commands.add_parser("import", help="import an archive, an MCP memory.json or Markdown notes"))
    imp.add_argument("file", metavar="FILE", type=Path)
    imp.add_argument("--cube", dest="cube_name", default=None, help="target cube (default: the archive's cube, else default)")
    imp.add_argument(
        "--format", choices=("archive", "mcp-memory", "markdown"), default=None, help="default: guessed from the file"
    )
    imp.set_defaults(func=cmd_import)
