"""The ``memcube`` commands that mirror the MCP tools one for one (as sqlite-utils' CLI mirrors its API).

    memcube list|recent    memory://{cube}/recent      memcube graph ENTITY     memory_graph
    memcube add TEXT       memory_add                  memcube alias NAME [E]   memory_alias
    memcube search QUERY   memory_search               memcube profile          memory_profile
    memcube get ID...      memory_get                  memcube progress ID      memory_progress
    memcube update ID      memory_update               memcube ask QUESTION     memory_ask
    memcube delete ID...   memory_delete               memcube stats            memory://{cube}/stats
    memcube archive ID...  memory_archive
    memcube restore ID...  memory_restore
    memcube history ID     memory_history

Each prints text or a table for a person, and with ``--json`` exactly what the tool returns
(the same pydantic models), for scripts. Every command goes through the memory API
(``MemCube``), as the tools do; writes are recorded with the client ``memcube-cli``.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any, get_args

from memory.defaults import DEFAULT_CUBE
from memory.models import (
    CLEARABLE_FIELDS,
    FIELD_DOCS,
    KNOWN_TYPES,
    MAX_CONTEXT_TURNS,
    MAX_LIMIT,
    SEARCH_DOCS,
    STATES,
    CubeStats,
    MemoryStatus,
)
from memory.profile import DEFAULT_BUDGET_TOKENS
from memory.store.browse import MAX_PAGE

from .cli_output import cut, emit, fail, print_json, table, width

CLIENT = "memcube-cli"
ALL_STATES = sorted({s for states in STATES.values() for s in states})
TYPES_HELP = f"{', '.join(KNOWN_TYPES)}, or a type declared in <home>/config.toml [types] custom"
STATE_HELP = "; ".join(f"{t}: {', '.join(s)} (default {s[0]})" for t, s in STATES.items())


def _home(args: argparse.Namespace) -> Any:
    from memory import MemoryHome

    return MemoryHome(args.home)


class _Opened:
    """The home for one command, closed afterwards (``with _Opened(args) as home``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def __enter__(self) -> Any:
        self.home = _home(self.args)
        return self.home

    def __exit__(self, *exc: object) -> None:
        self.home.close()


def _day(value: str | None) -> str:
    return value[:10] if value else ""


# -- list / recent -----------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    with _Opened(args) as home:
        memories = _listed(home.cube(args.cube), args.status, args.limit)
        if args.type:
            memories = [m for m in memories if m.type in args.type]
    if args.status == "active":
        emit(args, memories, _render_memories_table)
    else:
        emit(args, memories, lambda found: _render_memories_table(found, status=True, empty=f"no {args.status} memories"))
    return 0


def _listed(cube: Any, status: str, limit: int) -> list[Any]:
    """The ``limit`` newest memories in ``status`` (or any status), paged through the browse view."""
    if status == "active":
        return list(cube.recent(limit))
    memories: list[Any] = []
    cursor = None
    while len(memories) < limit:
        page = cube.browse({"status": status}, cursor=cursor, limit=min(MAX_PAGE, limit - len(memories)))
        memories += page.memories
        if (cursor := page.next) is None:
            break
    return memories


def _render_memories_table(memories: list[Any], *, status: bool = False, empty: str = "no memories yet") -> None:
    if not memories:
        print(empty)
        return
    table(
        [
            (
                m.id,
                *((m.status,) if status else ()),
                m.type,
                m.state or "",
                _day(m.due_at),
                _day(m.occurred_at or m.created_at),
                m.text,
            )
            for m in memories
        ],
        ("id", *(("status",) if status else ()), "type", "state", "due", "date", "text"),
    )


# -- add / update ------------------------------------------------------------------


def _relation(value: str) -> dict[str, str]:
    parts = [p.strip() for p in value.split(":")]
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError("a relation is SUBJECT:PREDICATE:OBJECT, e.g. 'Alice:works_at:Acme'")
    return {"subject": parts[0], "predicate": parts[1], "object": parts[2]}


def _metadata(value: str) -> dict[str, Any]:
    try:
        found = json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError('metadata is a JSON object, e.g. \'{"source": "email"}\'') from None
    if not isinstance(found, dict):
        raise argparse.ArgumentTypeError('metadata is a JSON object, e.g. \'{"source": "email"}\'')
    return found


def _fields(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value != []:
            item[name] = value
    return item


FIELDS = (
    "tags",
    "entities",
    "relations",
    "occurred_at",
    "metadata",
    "importance",
    "role",
    "subject",
    "state",
    "due_at",
    "parent_id",
)


def cmd_add(args: argparse.Namespace) -> int:
    from memory import MemoryInput

    item = {"text": args.text, "type": args.type, **_fields(args, (*FIELDS, "session_id"))}
    valid = MemoryInput.model_validate(item)  # before the cube is opened: bad input creates nothing
    with _Opened(args) as home:
        home.check_types([valid.type])
        cube = home.cube(args.cube, create=True)
        outcome = cube.add([valid], client=CLIENT)[0]
        cube.try_sync_graph()
    emit(args, {"ids": [outcome.id], "results": [outcome]}, lambda _: _render_added(outcome))
    return 0


def _render_added(outcome: Any) -> None:
    if outcome.restated:
        print(f"{outcome.id} (already stored in other words; confirmed)")
    elif not outcome.created:
        print(f"{outcome.id} (already stored)")
    else:
        print(outcome.id)
    for gone in outcome.superseded:
        print(f"  supersedes {gone.id} (now archived; `memcube restore {gone.id}` brings it back): {gone.reason}")


def cmd_update(args: argparse.Namespace) -> int:
    from memory import MemoryPatch

    patch = MemoryPatch.model_validate(_fields(args, ("text", "type", *FIELDS, "clear")))
    with _Opened(args) as home:
        if patch.type is not None:
            home.check_types([patch.type])
        cube = home.cube(args.cube)
        memory = cube.update(args.id, patch, client=CLIENT)
        cube.try_sync_graph()
    emit(args, memory, _render_memory)
    return 0


# -- reads ------------------------------------------------------------------------


def _render_memory(memory: Any) -> None:
    print(f"{memory.id}  ({memory.type}, {memory.status}, version {memory.version})")
    print(f"  {memory.text}")
    rows = [
        ("state", memory.state),
        ("due", memory.due_at),
        ("goal", memory.parent_id),
        ("occurred", memory.occurred_at),
        ("role", memory.role),
        ("subject", memory.subject),
        ("tags", ", ".join(memory.tags)),
        ("entities", ", ".join(memory.entities)),
        ("relations", "; ".join(f"{r.subject} {r.predicate} {r.object}" for r in memory.relations)),
        ("importance", memory.importance),
        ("created", memory.created_at),
        ("updated", memory.updated_at),
        ("client", memory.client),
        ("supersedes", memory.supersedes),
        ("superseded by", memory.superseded_by),
    ]
    for label, value in rows:
        if value not in (None, ""):
            print(f"  {label + ':':14} {value}")
    for entry in memory.feedback:
        print(f"  {'log:':14} {entry.at[:16]} tried: {entry.tried or '-'}; result: {entry.result or '-'}")


def cmd_get(args: argparse.Namespace) -> int:
    with _Opened(args) as home:
        memories = home.cube(args.cube).get(args.ids)
    if args.json:
        print_json({"memories": memories})
    else:
        for index, memory in enumerate(memories):
            if index:
                print()
            _render_memory(memory)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from memory import SearchQuery

    query = SearchQuery(
        query=args.query,
        limit=args.limit,
        include_archived=args.include_archived,
        types=args.type or None,
        tags=args.tag or None,
        since=args.since,
        until=args.until,
        context=args.context,
        states=args.state or None,
        due_before=args.due_before,
        due_after=args.due_after,
        overdue=args.overdue,
        include_weak=args.include_weak,
    )
    with _Opened(args) as home:
        result = home.cube(args.cube).search(query, now=args.now)
    emit(args, result, lambda found: _render_search(found, status=args.include_archived))
    return 0


def _render_search(result: Any, *, status: bool = False) -> None:
    if result.tasks is not None:
        print(f"read as: {result.tasks.expression}")
    if result.time is not None and result.time_applied:
        print(f"time: {result.time.expression} ({_day(result.time.since)} .. {_day(result.time.until)})")
    if not result.hits:
        print(result.relevance or "nothing found")
        return
    # With archived memories in the hits, each says whether it is current.
    table(
        [
            (
                h.confidence or "",
                h.id,
                *((h.status,) if status else ()),
                h.type,
                h.state or "",
                _day(h.due_at),
                _day(h.occurred_at),
                h.text,
            )
            for h in result.hits
        ],
        ("match", "id", *(("status",) if status else ()), "type", "state", "due", "date", "text"),
    )
    if result.below_floor:
        print(f"({result.relevance})")


def cmd_history(args: argparse.Namespace) -> int:
    with _Opened(args) as home:
        versions = home.cube(args.cube).history(args.id)

    def render(_: Any) -> None:
        for v in versions:
            print(f"v{v.version}  {v.at[:19]}  {v.op:8} {v.client or '-'}")
            for line in _changes(v.changes):
                print(textwrap.fill(line, width(), initial_indent="    ", subsequent_indent="      "))

    emit(args, {"id": args.id, "versions": versions}, render)
    return 0


def _changes(changes: dict[str, dict[str, Any]]) -> list[str]:
    """Each changed field of a version in full, ``field: old -> new`` (a field set from nothing: ``field: new``)."""

    def shown(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = []
    for field, change in changes.items():
        old, new = change.get("old"), change.get("new")
        if old is None and new in (None, "", [], {}):
            continue  # an empty field of a new memory
        lines.append(f"{field}: {shown(new)}" if old is None else f"{field}: {shown(old)} -> {shown(new)}")
    return lines


# -- status changes ----------------------------------------------------------------


def _status_command(action: str) -> Any:
    def command(args: argparse.Namespace) -> int:
        with _Opened(args) as home:
            cube = home.cube(args.cube)
            if action == "delete":
                deleted = cube.delete(args.ids, purge=args.purge, client=CLIENT)
                cube.try_sync_graph()
                emit(
                    args,
                    {"ids": deleted, "purged": args.purge},
                    lambda _: print(f"{'purged' if args.purge else 'deleted'} {len(deleted)}: {' '.join(deleted)}"),
                )
                return 0
            memories = (cube.archive if action == "archive" else cube.restore)(args.ids, client=CLIENT)
            cube.try_sync_graph()
        done = "archived" if action == "archive" else "restored"
        emit(args, {"memories": memories}, lambda _: print(f"{done} {len(memories)}: {' '.join(m.id for m in memories)}"))
        return 0

    return command


# -- graph, aliases, profile, progress, ask, stats ------------------------------------


def cmd_graph(args: argparse.Namespace) -> int:
    with _Opened(args) as home:
        view = home.cube(args.cube).graph(args.entity, args.depth)

    def render(_: Any) -> None:
        also = f" (also: {', '.join(view.aliases)})" if view.aliases else ""
        print(f"{view.entity}{also}")
        for r in view.relations:
            print(f"  {r.subject} -[{r.predicate}]-> {r.object}" + (f"  ({r.source_memory})" if r.source_memory else ""))
        if view.neighbours:
            print(f"  with: {', '.join(view.neighbours)}")
        for m in view.memories:
            print(f"  {m.id}  {m.type:10} {cut(m.text, 100)}")

    emit(args, view, render)
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    if args.entity is None and args.split:
        raise ValueError("--split needs the entity to keep the name apart from")
    with _Opened(args) as home:
        cube = home.cube(args.cube)
        view = cube.alias_view(args.name) if args.entity is None else cube.alias(args.name, args.entity, split=args.split)

    def render(_: Any) -> None:
        print(f"{args.name} -> {view.entity}")
        print(f"  names: {', '.join(view.names)}")
        if view.ambiguous:
            print(f"  could mean: {', '.join(view.ambiguous)} (merge it into one with `memcube alias NAME ENTITY`)")

    emit(args, view, render)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    with _Opened(args) as home:
        profile = home.cube(args.cube).profile(role=args.role, budget_tokens=args.budget_tokens, now=args.now)
    emit(args, profile, lambda p: print(p.text or "nothing in the profile yet"))
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    feedback = None
    if args.tried is not None or args.result is not None:
        feedback = {"tried": args.tried, "result": args.result}
    with _Opened(args) as home:
        memory = home.cube(args.cube).progress(args.id, state=args.state, feedback=feedback, due_at=args.due_at, client=CLIENT)
    emit(args, memory, _render_memory)
    return 0


def _sources(cited: list[str], read: list[str]) -> str:
    """The memories an answer used; when it used none of those it read, says so."""
    if cited:
        return f"(from {', '.join(cited)})"
    return f"(no memory cited; {len(read)} read)" if read else "(no memories)"


def cmd_ask(args: argparse.Namespace) -> int:
    from memory.activation.scheduler import Scheduler

    if not args.question.strip():
        raise ValueError("give a question")
    with _Opened(args) as home:
        outcome = Scheduler(home).ask(args.cube, args.question, limit=args.limit, max_tokens=args.max_tokens)
    result = {
        "answer": outcome.answer,
        "cited_ids": outcome.cited_ids,
        "context_ids": outcome.context_ids,
        "mentioned_ids": outcome.mentioned_ids,
        "stopped": outcome.stopped,
        "reused_tokens": outcome.reused_tokens,
        "prefilled_tokens": outcome.prefilled_tokens,
        "ttft_ms": outcome.ttft_ms,
        "model": outcome.model,
    }
    emit(args, result, lambda _: print(f"{outcome.answer}\n\n{_sources(outcome.cited_ids, outcome.context_ids)}"))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _Opened(args) as home:
        if args.cube_given or not home.cube_names():
            stats = [home.cube(args.cube if args.cube_given else DEFAULT_CUBE).stats()]
        else:
            stats = home.every_stats()  # a damaged cube is listed as such; the others still counted (issue 26)
    emit(
        args,
        stats,
        lambda rows: table(
            [
                (s.cube, s.active, s.archived, s.deleted, s.entities, s.relations, s.graph_pending, s.embedding_model or "")
                if isinstance(s, CubeStats)
                else (s.cube, "DAMAGED", "", "", "", "", "", s.damaged)
                for s in rows
            ],
            ("cube", "active", "archived", "deleted", "entities", "relations", "graph pending", "embedding model"),
        ),
    )
    damaged = [s for s in stats if not isinstance(s, CubeStats)]
    for s in damaged:
        fail(s.damaged)
    return 1 if damaged else 0


# -- the parser --------------------------------------------------------------------


def _common(
    p: argparse.ArgumentParser, *, cube_default: str = DEFAULT_CUBE, json_help: str = "print JSON (what the MCP tool returns)"
) -> argparse.ArgumentParser:
    p.add_argument("--cube", default=None, help=f"cube name (default: {cube_default})")
    p.add_argument(
        "--home", type=Path, default=argparse.SUPPRESS, help="data directory (default: $MEMCUBE_HOME or the platform data folder)"
    )
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show a traceback on errors")
    return p


def _memory_fields(p: argparse.ArgumentParser, *, update: bool) -> None:
    keep = " (leave out to keep it)" if update else ""
    p.add_argument(
        "--type", default=None if update else "note", help=f"{TYPES_HELP} (default: {'unchanged' if update else 'note'})"
    )
    p.add_argument("--tag", dest="tags", action="append", help="a tag (repeatable)" + (" ; replaces the tags" if update else ""))
    p.add_argument("--entity", dest="entities", action="append", help=f"{FIELD_DOCS['entities']} (repeatable)")
    p.add_argument(
        "--relation",
        dest="relations",
        action="append",
        type=_relation,
        metavar="S:P:O",
        help="a fact between entities, e.g. Alice:works_at:Acme (repeatable)",
    )
    p.add_argument("--occurred-at", help=FIELD_DOCS["occurred_at"] + keep)
    p.add_argument("--due-at", help=FIELD_DOCS["due_at"] + keep)
    p.add_argument("--state", help=f"goals and tasks: {STATE_HELP}")
    p.add_argument("--parent-id", help=FIELD_DOCS["parent_id"])
    p.add_argument("--role", help=FIELD_DOCS["role"])
    p.add_argument("--subject", help=FIELD_DOCS["subject"])
    p.add_argument("--importance", type=float, help="0 to 1" + ("" if update else " (default: 0.5)"))
    p.add_argument("--metadata", type=_metadata, help=FIELD_DOCS["metadata"])


def register(commands: Any) -> None:
    """Add the tool commands to the ``memcube`` parser."""
    for name in ("list", "recent"):
        p = _common(
            commands.add_parser(name, help="the most recently added memories" + (" (same as list)" if name == "recent" else ""))
        )
        p.add_argument("--limit", type=int, default=20, help="how many (default: 20)")
        p.add_argument("--type", action="append", help="only this type (repeatable)")
        p.add_argument(
            "--status",
            choices=(*get_args(MemoryStatus), "any"),
            default="active",
            help="only memories in this status, or any (default: active)",
        )
        p.set_defaults(func=cmd_list)

    add = _common(commands.add_parser("add", help="add a memory (memory_add)"))
    add.add_argument("text")
    _memory_fields(add, update=False)
    add.add_argument("--session-id", help=FIELD_DOCS["session_id"])
    add.set_defaults(func=cmd_add)

    search = _common(
        commands.add_parser(
            "search",
            help="search memories (memory_search)",
            description=(
                "Find memories by meaning and words. Time words ('last week', 'in May 2023') and task words ('overdue', "
                "'open tasks', 'due next week', 'due by Friday', 'tasks for the launch goal') in the query become filters."
            ),
        )
    )
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=10, help=f"most hits, 1-{MAX_LIMIT} (default: 10)")
    search.add_argument("--type", action="append", help=f"only this type (repeatable): {TYPES_HELP}")
    search.add_argument("--tag", action="append", help="only memories with this tag (repeatable)")
    search.add_argument(
        "--state", action="append", help=f"only goals/tasks in this state (repeatable): {', '.join(ALL_STATES)}, or open"
    )
    search.add_argument("--due-before", help=SEARCH_DOCS["due_before"])
    search.add_argument("--due-after", help=SEARCH_DOCS["due_after"])
    search.add_argument("--overdue", action="store_true", help=SEARCH_DOCS["overdue"])
    search.add_argument("--since", help=SEARCH_DOCS["since"])
    search.add_argument("--until", help=SEARCH_DOCS["until"])
    search.add_argument("--now", help="reference time for time and task words, ISO 8601 (default: now)")
    search.add_argument(
        "--context",
        type=int,
        default=0,
        help=f"also show this many session neighbours per hit, 0-{MAX_CONTEXT_TURNS} (default: 0)",
    )
    search.add_argument("--include-archived", action="store_true", help=SEARCH_DOCS["include_archived"])
    search.add_argument("--include-weak", action="store_true", help="also show weak matches (below the relevance floor)")
    search.set_defaults(func=cmd_search)

    get = _common(commands.add_parser("get", help="show memories by id (memory_get)"))
    get.add_argument("ids", nargs="+", metavar="ID")
    get.set_defaults(func=cmd_get)

    update = _common(commands.add_parser("update", help="correct a memory (memory_update)"))
    update.add_argument("id", metavar="ID")
    update.add_argument("--text", help="the corrected text")
    _memory_fields(update, update=True)
    update.add_argument(
        "--clear",
        action="append",
        metavar="FIELD",
        help=f"empty an optional field: {', '.join(CLEARABLE_FIELDS)} (repeatable; the old value stays in the history)",
    )
    update.set_defaults(func=cmd_update)

    delete = _common(
        commands.add_parser(
            "delete",
            help="delete memories (memory_delete): a tombstone, not restorable; its text stays in history until purged "
            "(archive keeps a memory restorable)",
        )
    )
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.add_argument("--purge", action="store_true", help="erase for good (also from history) instead of a tombstone")
    delete.set_defaults(func=_status_command("delete"))

    for name, text in (
        ("archive", "archive memories: out of search, kept (memory_archive)"),
        ("restore", "bring archived memories back (memory_restore)"),
    ):
        p = _common(commands.add_parser(name, help=text))
        p.add_argument("ids", nargs="+", metavar="ID")
        p.set_defaults(func=_status_command(name))

    history = _common(commands.add_parser("history", help="every version of a memory (memory_history)"))
    history.add_argument("id", metavar="ID")
    history.set_defaults(func=cmd_history)

    graph = _common(commands.add_parser("graph", help="an entity's relations and memories (memory_graph)"))
    graph.add_argument("entity", metavar="ENTITY")
    graph.add_argument("--depth", type=int, choices=(1, 2), default=1, help="1: direct relations; 2: also theirs (default: 1)")
    graph.set_defaults(func=cmd_graph)

    alias = _common(commands.add_parser("alias", help="what a name resolves to; merge or split entity names (memory_alias)"))
    alias.add_argument("name", metavar="NAME")
    alias.add_argument(
        "entity", metavar="ENTITY", nargs="?", help="merge NAME into this entity (leave out to show what NAME resolves to)"
    )
    alias.add_argument("--split", action="store_true", help="keep NAME and ENTITY apart")
    alias.set_defaults(func=cmd_alias)

    profile = _common(commands.add_parser("profile", help="goals, open tasks, preferences, facts (memory_profile)"))
    profile.add_argument("--role", help="only this role (e.g. work, home) plus memories without a role")
    profile.add_argument(
        "--budget-tokens",
        type=int,
        default=DEFAULT_BUDGET_TOKENS,
        help=f"size limit of the profile text, 100-20000 (default: {DEFAULT_BUDGET_TOKENS})",
    )
    profile.add_argument("--now", help="reference time, ISO 8601 (default: now)")
    profile.set_defaults(func=cmd_profile)

    progress = _common(commands.add_parser("progress", help="move a task or goal on, log what was tried (memory_progress)"))
    progress.add_argument("id", metavar="ID")
    progress.add_argument("--state", help=STATE_HELP)
    progress.add_argument("--tried", help="what was tried or done")
    progress.add_argument("--result", help="what came of it")
    progress.add_argument("--due-at", help="a new due date, ISO 8601")
    progress.set_defaults(func=cmd_progress)

    ask = _common(commands.add_parser("ask", help="answer from memories with the local model (memory_ask)"))
    ask.add_argument("question")
    ask.add_argument("--limit", type=int, default=8, help="memories to retrieve for the answer (default: 8)")
    ask.add_argument("--max-tokens", type=int, default=None, help="longest answer in tokens (default: the config's, 256)")
    ask.set_defaults(func=cmd_ask)

    stats = _common(commands.add_parser("stats", help="counts per cube"), cube_default="every cube")
    stats.set_defaults(func=cmd_stats)
