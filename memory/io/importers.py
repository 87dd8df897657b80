"""Bring memories in from other tools: the official MCP memory server and Markdown notes.

Both importers go through ``MemCube.add``, so what they bring is validated, embedded,
linked to its entities and recorded as versions like any other memory; an exact
duplicate of a live memory is not added twice, so importing the same file again adds
nothing.

**MCP memory server** (``@modelcontextprotocol/server-memory``, its ``memory.json``): a
JSON Lines file of ``{"type": "entity", "name", "entityType", "observations": [...]}`` and
``{"type": "relation", "from", "to", "relationType"}``. Each observation becomes one
memory ``"<name>: <observation>"`` that mentions the entity and is tagged with its
entity type; an entity without observations becomes ``"<name> is a <entityType>"``; each
relation becomes a memory ``"<from> <relation type> <to>"`` carrying that relation, so
it appears in the graph as ``RELATED``.

**Markdown** (a ``.md`` file or a folder of them, searched recursively): one memory per
*section*. A heading starts a section; a section's memory is its text prefixed by its
heading path (``"Title › Heading: body"``). A section whose body is only a bullet list
becomes one memory per top-level bullet instead, because a list in a note is usually a
list of separate facts. Text before the first heading is a section under the note's
title (the file name). YAML front matter ``tags`` become tags and ``date`` becomes
``occurred_at``; the file and section are kept in ``metadata``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory.errors import InvalidInput
from memory.io.progress import IMPORTING, Progress, silent
from memory.models import MAX_BATCH, MAX_TAG_CHARS, MAX_TAGS, MAX_TEXT_CHARS

if TYPE_CHECKING:
    from memory.cube import MemCube

IMPORT_CLIENT = "memcube-import"


@dataclass
class ImportSummary:
    cube: str
    source: str
    read: int = 0  # memories made from the source
    added: int = 0
    already_present: int = 0
    ids: list[str] = field(default_factory=list)


def _add_all(cube: MemCube, items: list[dict[str, Any]], summary: ImportSummary, progress: Progress = silent) -> ImportSummary:
    """Add every item, after checking them all: a file with one bad item adds nothing."""
    from pydantic import ValidationError

    from memory.models import MemoryInput

    checked = []
    for number, item in enumerate(items, start=1):
        try:
            checked.append(MemoryInput.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'item'}: {e['msg']}" for e in exc.errors()[:3])
            raise InvalidInput(
                f"{summary.source}: memory {number} ({item.get('text', '')[:60]!r}) cannot be stored: {problems}"
            ) from None
    items = checked  # type: ignore[assignment]
    summary.read = len(items)
    progress(IMPORTING, 0, len(items))
    for start in range(0, len(items), MAX_BATCH):
        for outcome in cube.add(items[start : start + MAX_BATCH], client=IMPORT_CLIENT):
            summary.ids.append(outcome.id)
            if outcome.created:
                summary.added += 1
            else:
                summary.already_present += 1
        progress(IMPORTING, min(start + MAX_BATCH, len(items)), len(items))
    cube.try_merge_fulltext()
    cube.try_sync_graph()
    return summary


def _tag(value: str) -> str | None:
    value = value.strip().lstrip("#").strip()
    return value[:MAX_TAG_CHARS] if value else None


# -- the official MCP memory server -------------------------------------------------------


def read_mcp_memory(path: Path | str) -> list[dict[str, Any]]:
    """The memories to make from an MCP memory server's ``memory.json`` (see the module doc)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    source = f"mcp-memory:{path.name}"
    items: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise InvalidInput(
                f"{path} line {number} is not JSON: an MCP memory file has one JSON object per line "
                '({"type": "entity", ...} or {"type": "relation", ...})'
            ) from None
        kind = record.get("type") if isinstance(record, dict) else None
        if kind == "entity":
            name, entity_type = _field(record, "name", path, number), str(record.get("entityType") or "").strip()
            observations = record.get("observations") or []
            if not isinstance(observations, list):
                raise InvalidInput(f"{path} line {number}: observations must be a list of strings")
            tags = [t for t in [_tag(entity_type)] if t]
            meta = {"imported_from": "mcp-memory", "entity": name, "entity_type": entity_type}
            texts = [f"{name}: {str(o).strip()}" for o in observations if str(o).strip()]
            if not texts:
                texts = [f"{name} is a {entity_type}" if entity_type else name]
            items += [
                {"text": t, "type": "note", "entities": [name], "tags": tags, "metadata": meta, "source": source} for t in texts
            ]
        elif kind == "relation":
            subject, obj = _field(record, "from", path, number), _field(record, "to", path, number)
            predicate = _field(record, "relationType", path, number)
            items.append(
                {
                    "text": f"{subject} {predicate.replace('_', ' ')} {obj}",
                    "type": "note",
                    "entities": [subject, obj],
                    "relations": [{"subject": subject, "predicate": predicate, "object": obj}],
                    "metadata": {"imported_from": "mcp-memory"},
                    "source": source,
                }
            )
        else:
            raise InvalidInput(f'{path} line {number}: expected "type": "entity" or "relation", got {kind!r}')
    return items


def _field(record: dict[str, Any], key: str, path: Path, number: int) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{path} line {number}: {record.get('type')} needs a non-empty {key!r}")
    return value.strip()


def import_mcp_memory(cube: MemCube, path: Path | str, *, progress: Progress = silent) -> ImportSummary:
    return _add_all(cube, read_mcp_memory(path), ImportSummary(cube.name, str(path)), progress)


# -- Markdown notes -----------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^[-*+]\s+(?:\[[ xX]\]\s+)?(.*)$")
_ORDERED = re.compile(r"^\d+[.)]\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass
class _Section:
    path: list[str]
    lines: list[str]


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A small YAML front matter reader: ``key: value`` and ``key: [a, b]`` / ``- item`` lists."""
    if not text.startswith("---"):
        return {}, text
    lines = text.splitlines()
    if lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        return {}, text
    meta: dict[str, Any] = {}
    key = None
    for line in lines[1:end]:
        item = re.match(r"^\s+-\s+(.*)$", line) or re.match(r"^-\s+(.*)$", line)
        if item and key is not None:
            if not isinstance(meta.get(key), list):
                meta[key] = []
            meta[key].append(item.group(1).strip().strip("'\""))
            continue
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:\s*(.*)$", line)
        if match:
            key, value = match.group(1).lower(), match.group(2).strip()
            if value.startswith("[") and value.endswith("]"):
                meta[key] = [v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip()]
            elif value:
                meta[key] = value.strip("'\"")
    return meta, "\n".join(lines[end + 1 :])


def _sections(title: str, body: str) -> Iterator[_Section]:
    path: list[str] = [title]
    current = _Section(list(path), [])
    in_fence = False
    for line in body.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            yield current
            level, text = len(heading.group(1)), heading.group(2).strip()
            # A leading H1 usually repeats the title: it replaces the file name rather than nesting under it.
            if level == 1:
                path = [text]
            else:
                path = path[: max(1, level - 1)] + [text]
            current = _Section(list(path), [])
        else:
            current.lines.append(line)
    yield current


def _units(section: _Section) -> list[str]:
    """The texts one section makes: one per top-level bullet when the body is a list, else one."""
    lines = [line.rstrip() for line in section.lines]
    content = [line for line in lines if line.strip()]
    if not content:
        return []
    top = [line for line in content if not line.startswith((" ", "\t"))]
    if top and all(_BULLET.match(line) or _ORDERED.match(line) for line in top):
        bullets: list[str] = []
        for line in content:
            match = None if line.startswith((" ", "\t")) else (_BULLET.match(line) or _ORDERED.match(line))
            if match:
                bullets.append(match.group(1).strip())
            elif bullets:
                bullets[-1] += " " + line.strip().lstrip("-*+ ").strip()
        return [b for b in bullets if b]
    return ["\n".join(lines).strip()]


def _chunks(text: str, limit: int) -> list[str]:
    """Split text longer than a memory may be at paragraph (then line, then hard) boundaries."""
    if len(text) <= limit:
        return [text]
    out: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        while len(paragraph) > limit:
            out.append(paragraph[:limit])
            paragraph = paragraph[limit:]
        if current and len(current) + 2 + len(paragraph) > limit:
            out.append(current)
            current = paragraph
        else:
            current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        out.append(current)
    return out


def markdown_files(path: Path | str) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in (".md", ".markdown")
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    raise InvalidInput(f"no Markdown file or folder at {path}")


def read_markdown(path: Path | str) -> list[dict[str, Any]]:
    """The memories to make from a Markdown file or folder (see the module doc)."""
    root = Path(path)
    files = markdown_files(root)
    items: list[dict[str, Any]] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {file} as UTF-8 text: {exc}") from None
        relative = file.name if root.is_file() else str(file.relative_to(root))
        meta, body = _front_matter(text)
        tags_value = meta.get("tags") or []
        tags = [t for t in (_tag(v) for v in ([tags_value] if isinstance(tags_value, str) else tags_value)) if t][:MAX_TAGS]
        occurred = meta.get("date") if isinstance(meta.get("date"), str) else None
        title = str(meta.get("title") or file.stem)
        for section in _sections(title, body):
            heading = " › ".join(section.path)
            for unit in _units(section):
                prefix = f"{heading}: "
                for chunk in _chunks(unit, MAX_TEXT_CHARS - len(prefix)):
                    item: dict[str, Any] = {
                        "text": prefix + chunk,
                        "type": "note",
                        "tags": tags,
                        "source": f"markdown:{relative}",
                        "metadata": {"imported_from": "markdown", "file": relative, "section": heading},
                    }
                    if occurred:
                        item["occurred_at"] = occurred
                    items.append(item)
    return items


def import_markdown(cube: MemCube, path: Path | str, *, progress: Progress = silent) -> ImportSummary:
    items = read_markdown(path)
    _check_dates(items)
    return _add_all(cube, items, ImportSummary(cube.name, str(path)), progress)


def _check_dates(items: Iterable[dict[str, Any]]) -> None:
    """A front-matter date MemCube cannot read is dropped rather than failing the whole import."""
    from memory.timeutil import stored_from_input

    for item in items:
        if "occurred_at" in item:
            try:
                stored_from_input(item["occurred_at"], field="date")
            except InvalidInput:
                item.pop("occurred_at")
