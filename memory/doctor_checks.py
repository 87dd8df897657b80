"""Doctor checks added by issue 13: file modes, the graph folder, rows no reader can serve.

``check_home`` runs before any cube is opened (opening one would already tighten its
files and make a fresh graph folder): it makes every folder 0700 and every file 0600,
and moves aside anything that stands where a cube's ``graph/`` folder belongs, so the
graph is rebuilt from SQLite. ``repair_rows`` finds memories stored by an older import
that the read model refuses (tags that are not strings, relations that are not
relations, ...), which jam the graph outbox and fail every search of the cube; it keeps
what is valid in each such field, resets the rest, and records a ``repair`` version.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from memory.models import EntityName, Relation, Tag
from memory.store import filemodes
from memory.store.rows import MEMORY_COLUMNS, row_to_memory
from memory.timeutil import now_stored

DOCTOR_CLIENT = "memcube-doctor"
_TAG = TypeAdapter(Tag)
_ENTITY = TypeAdapter(EntityName)
_RELATION = TypeAdapter(Relation)


@dataclass
class HomeReport:
    root: Path
    findings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"home {self.root}: {'ok' if not self.findings else 'PROBLEMS (repaired where listed)'}"]
        lines += [f"  problem: {f}" for f in self.findings]
        lines += [f"  repaired: {r}" for r in self.repairs]
        return "\n".join(lines)


def check_home(root: Path) -> HomeReport:
    """Private modes and graph folders for the whole home; run it before opening cubes."""
    report = HomeReport(root)
    modes = filemodes.tighten(root)
    if modes.found:
        shown = ", ".join(str(Path(p).relative_to(root)) or "." for p in modes.found[:5])
        report.findings.append(
            f"{len(modes.found)} files or folders could be read by other users ({shown}{', ...' if len(modes.found) > 5 else ''})"
        )
        report.repairs.append(f"made {modes.fixed} of them private (folders 0700, files 0600)")
    cubes = root / "cubes"
    moved = []
    if cubes.is_dir():
        for folder in sorted(cubes.iterdir()):
            graph = folder / "graph"
            if (folder / "memory.db").is_file() and (graph.is_symlink() or (graph.exists() and not graph.is_dir())):
                aside = graph.with_name(f"graph.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
                graph.rename(aside)
                moved.append(f"{folder.name} ({aside.name})")
    if moved:
        report.findings.append(f"{len(moved)} cubes had something other than a folder at graph/: {', '.join(moved)}")
        report.repairs.append(f"moved {len(moved)} aside; their graphs are rebuilt from SQLite")
    return report


def repair_rows(cube: Any) -> tuple[int, list[str]]:
    """(memories repaired, problems left) for rows the read model or the graph cannot take."""
    store = cube.store
    rows = store.raw_memory_rows()
    names = [c.strip() for c in MEMORY_COLUMNS.split(",")]
    fixes: list[tuple[int, str, int, dict[str, Any], dict[str, Any]]] = []
    left: list[str] = []
    for row in rows:
        record = dict(zip(names, row, strict=True))
        if _readable(cube.name, row, record):
            continue
        new = _sanitised(record)
        if not _readable(cube.name, tuple({**record, **new}[n] for n in names), {**record, **new}):
            left.append(f"memory {record['id']} cannot be read and was not repaired")
            continue
        fixes.append(
            (record["row_id"], record["id"], int(record["version"]) if isinstance(record["version"], int) else 1, record, new)
        )
    if fixes:
        store.repair_rows(
            [
                (
                    row_id,
                    memory_id,
                    version,
                    new,
                    {
                        k: {"old": old[k] if isinstance(old[k], str | int | float | None) else repr(old[k]), "new": new[k]}
                        for k in new
                    },
                )
                for row_id, memory_id, version, old, new in fixes
            ],
            client=DOCTOR_CLIENT,
        )
    return len(fixes), left


def _readable(cube: str, row: tuple, record: dict[str, Any]) -> bool:
    try:
        row_to_memory(cube, row)
        relations = json.loads(record["relations"] or "[]")
        entities = json.loads(record["entities"] or "[]")
    except (ValueError, TypeError, KeyError, ValidationError):
        return False
    return all(isinstance(e, str) for e in entities) and all(
        isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("subject", "predicate", "object")) for r in relations
    )


def _json(value: Any, default: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) and value else default
    except ValueError:
        return default


def _keep(adapter: TypeAdapter, values: Any) -> list[Any]:
    kept = []
    for value in values if isinstance(values, list) else []:
        try:
            kept.append(adapter.validate_python(value))
        except ValidationError:
            continue
    return kept


def _sanitised(record: dict[str, Any]) -> dict[str, Any]:
    """New values for the fields of ``record`` that no reader can take; valid parts are kept."""
    new: dict[str, Any] = {}
    dumps = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))  # noqa: E731
    for key, adapter in (("tags", _TAG), ("entities", _ENTITY)):
        kept = list(dict.fromkeys(_keep(adapter, _json(record[key], []))))
        if dumps(kept) != record[key]:
            new[key] = dumps(kept)
    relations = [r.model_dump(mode="json") for r in _keep(_RELATION, _json(record["relations"], []))]
    if dumps(relations) != record["relations"]:
        new["relations"] = dumps(relations)
    metadata = _json(record["metadata"], {})
    if not isinstance(metadata, dict):
        new["metadata"] = "{}"
    for key, default in (("importance", 0.5), ("confidence", 1.0)):
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            new[key] = default
    for key in ("access_count", "version"):
        if not isinstance(record[key], int) or record[key] < 0:
            new[key] = 0 if key == "access_count" else 1
    for key in ("created_at", "updated_at"):
        if not isinstance(record[key], str):
            new[key] = now_stored()
    new.pop("version", None)  # the repair bumps it
    return new


def repair_supersession_links(cube: Any) -> int:
    """Clear ``supersedes`` / ``superseded_by`` links that lead to no memory of the cube or round a cycle (issue 26).

    Such links come from older imports and from purges; a memory's page failed on them. Each
    cleared link is a ``repair`` version of its memory. Returns how many memories were repaired.
    """
    from memory.supersession_links import FIELDS, broken_links

    names = [c.strip() for c in MEMORY_COLUMNS.split(",")]
    records = {row[names.index("id")]: dict(zip(names, row, strict=True)) for row in cube.store.raw_memory_rows()}
    links = {
        memory_id: (record["supersedes"], record["superseded_by"])
        for memory_id, record in records.items()
        if record["supersedes"] or record["superseded_by"]
    }
    broken = broken_links(links, lambda ids: {i for i in ids if i in records})
    fixes = []
    for memory_id, fields in sorted(broken.items()):
        record = records[memory_id]
        new = {name: None for name in FIELDS if name in fields}
        version = int(record["version"]) if isinstance(record["version"], int) else 1
        fixes.append((record["row_id"], memory_id, version, new, {k: {"old": record[k], "new": None} for k in new}))
    if fixes:
        cube.store.repair_rows(fixes, client=DOCTOR_CLIENT)
    return len(fixes)
