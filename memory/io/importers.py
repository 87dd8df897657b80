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
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory.errors import InvalidInput
from memory.io import limits
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
    skipped: list[str] = field(default_factory=list)  # files left out, and why (links out of the folder, ...)


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
    """The memories to make from an MCP memory server's ``memory.json`` (see the module doc).

    The file is read as a stream of bounded lines (``memory.io.limits``); a byte-order mark is allowed.
    """
    path = Path(path)
    source = f"mcp-memory:{path.name}"
    items: list[dict[str, Any]] = []
    budget = limits.Budget(limits.MAX_SOURCE_BYTES, str(path))
    try:  # non-blocking: a fifo named here must not hang the import (R1); a regular file reads as ever
        handle = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise InvalidInput(f"cannot read {path}: not a regular file")
        for number, raw in limits.bounded_lines(handle, where=str(path), limit=limits.MAX_RECORD_BYTES, budget=budget):
            for item in _mcp_items(raw, path, number, source):
                _append(items, item, path)
    return items


def _append(items: list[dict[str, Any]], item: dict[str, Any], source: Path) -> None:
    if len(items) >= limits.MAX_SOURCE_ITEMS:
        raise InvalidInput(
            f"{source} makes more than {limits.MAX_SOURCE_ITEMS:,} memories, the most one import adds; split it and import the parts"
        )
    items.append(item)


def _mcp_items(raw: bytes, path: Path, number: int, source: str) -> Iterator[dict[str, Any]]:
    """The memories one line of an MCP memory file makes."""
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        return
    try:
        line = raw.decode("utf-8")
        record = json.loads(line)
    except RecursionError:
        raise limits.nested_too_deeply(f"{path} line {number}") from None
    except ValueError:
        raise InvalidInput(
            f"{path} line {number} is not JSON in UTF-8: an MCP memory file has one JSON object per line "
            '({"type": "entity", ...} or {"type": "relation", ...})'
        ) from None
    limits.check_depth(record, raw, f"{path} line {number}")
    kind = record.get("type") if isinstance(record, dict) else None
    if kind == "entity":
        name, entity_type = _field(record, "name", path, number), str(record.get("entityType") or "").strip()
        observations = record.get("observations") or []
        if not isinstance(observations, list):
            raise InvalidInput(f"{path} line {number}: observations must be a list of strings")
        tags = [t for t in [_tag(entity_type)] if t]
        meta = {"imported_from": "mcp-memory", "entity": name, "entity_type": entity_type}
        made = False
        for observation in observations:
            if text := str(observation).strip():
                made = True
                yield {
                    "text": f"{name}: {text}",
                    "type": "note",
                    "entities": [name],
                    "tags": tags,
                    "metadata": meta,
                    "source": source,
                }
        if not made:
            text = f"{name} is a {entity_type}" if entity_type else name
            yield {"text": text, "type": "note", "entities": [name], "tags": tags, "metadata": meta, "source": source}
    elif kind == "relation":
        subject, obj = _field(record, "from", path, number), _field(record, "to", path, number)
        predicate = _field(record, "relationType", path, number)
        yield {
            "text": f"{subject} {predicate.replace('_', ' ')} {obj}",
            "type": "note",
            "entities": [subject, obj],
            "relations": [{"subject": subject, "predicate": predicate, "object": obj}],
            "metadata": {"imported_from": "mcp-memory"},
            "source": source,
        }
    else:
        raise InvalidInput(f'{path} line {number}: expected "type": "entity" or "relation", got {kind!r}')


def _field(record: dict[str, Any], key: str, path: Path, number: int) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{path} line {number}: {record.get('type')} needs a non-empty {key!r}")
    return value.strip()


def import_mcp_memory(cube: MemCube, path: Path | str, *, progress: Progress = silent) -> ImportSummary:
    return _add_all(cube, read_mcp_memory(path), ImportSummary(cube.name, str(path)), progress)


# -- Markdown notes -----------------------------------------------------------------------

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


def _heading(line: str) -> tuple[int, str] | None:
    r"""``(level, text)`` of an ATX heading ("## Text ##"), read in one pass over the line.

    (The pattern ``^(#{1,6})\s+(.*?)\s*#*\s*$`` took 20 s on "# a", 2,000 spaces and "b": issue 26.)
    A closing run of ``#`` counts only after a space, as in CommonMark: "# C#" is "C#".
    """
    hashes = len(line) - len(line.lstrip("#"))
    if not 1 <= hashes <= 6 or len(line) == hashes or not line[hashes].isspace():
        return None
    text = line[hashes:].strip()
    closing = text.rstrip("#")
    if not closing or closing[-1].isspace():
        text = closing.strip()
    return hashes, text


def _short(heading: str) -> str:
    """A heading as it prefixes each memory of its section: at most ``MAX_HEADING_CHARS``, so the path of
    six levels leaves room for the text (a longer one made ``_chunks`` loop for ever)."""
    return heading if len(heading) <= limits.MAX_HEADING_CHARS else heading[: limits.MAX_HEADING_CHARS - 1] + "…"


def _sections(title: str, body: str) -> Iterator[_Section]:
    path: list[str] = [title]
    current = _Section(list(path), [])
    in_fence = False
    for line in body.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _heading(line)
        if heading:
            yield current
            level, text = heading[0], _short(heading[1])
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


MARKDOWN_SUFFIXES = (".md", ".markdown")


def markdown_files(path: Path | str) -> list[Path]:
    """The Markdown files an import of ``path`` reads (see ``markdown_sources``)."""
    return markdown_sources(Path(path))[0]


def markdown_sources(path: Path) -> tuple[list[Path], list[str]]:
    """The Markdown files under ``path``, sorted, and what was left out and why.

    A file named directly is read as it is. In a folder, hidden files and folders are
    left out, and no link is followed out of the folder (issue 26: ``notes/passwd.md``
    pointing at ``/etc/passwd`` was imported): a linked file is read only when it resolves
    to a regular file inside the folder, and linked folders are not entered (what they
    lead to inside the folder is read where it is; outside it, not at all), so link loops
    end too.
    """
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise InvalidInput(f"no Markdown file or folder at {path}")
    root = path.resolve()
    files: list[Path] = []
    skipped: list[str] = []
    seen: set[Path] = set()
    for folder, dirs, names in os.walk(path, followlinks=False):
        base = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in dirs:
            if (base / name).is_symlink() and not _inside(base / name, root):
                skipped.append(f"{(base / name).relative_to(path)}: a link to a folder outside {path}")
        for name in names:
            if name.startswith(".") or Path(name).suffix.lower() not in MARKDOWN_SUFFIXES:
                continue
            file = base / name
            relative = file.relative_to(path)
            try:
                real = file.resolve(strict=True)
                info = real.stat()
            except (OSError, RuntimeError):
                skipped.append(f"{relative}: a broken or looping link")
                continue
            if not real.is_relative_to(root):
                skipped.append(f"{relative}: a link to a file outside {path}")
            elif not stat.S_ISREG(info.st_mode):
                skipped.append(f"{relative}: not a regular file")
            elif real not in seen:
                seen.add(real)
                files.append(file)
                if len(files) > limits.MAX_SOURCE_FILES:
                    raise InvalidInput(
                        f"{path} holds more than {limits.MAX_SOURCE_FILES:,} Markdown files; import its folders one by one"
                    )
    return sorted(files), skipped


def _inside(link: Path, root: Path) -> bool:
    try:
        return link.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):
        return False


def _read_text(file: Path, budget: limits.Budget) -> str:
    """The file's text (UTF-8, a byte-order mark allowed), read within ``budget``; never through a link swapped in meanwhile."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(file if not file.is_symlink() else file.resolve(strict=True), flags)
    except (OSError, RuntimeError) as exc:
        raise InvalidInput(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise InvalidInput(f"cannot read {file}: not a regular file")
        data = handle.read(budget.limit - budget.used + 1)
    budget.take(len(data), str(file))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"cannot read {file} as UTF-8 text: {exc}") from None


def read_markdown(path: Path | str) -> list[dict[str, Any]]:
    """The memories to make from a Markdown file or folder (see the module doc)."""
    return _markdown(Path(path))[0]


def _markdown(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The memories to make from ``root``, and the files left out (``markdown_sources``)."""
    files, skipped = markdown_sources(root)
    budget = limits.Budget(limits.MAX_SOURCE_BYTES, f"{root} (its Markdown)")
    items: list[dict[str, Any]] = []
    for file in files:
        text = _read_text(file, budget)
        relative = file.name if root.is_file() else str(file.relative_to(root))
        meta, body = _front_matter(text)
        tags_value = meta.get("tags") or []
        tags = [t for t in (_tag(v) for v in ([tags_value] if isinstance(tags_value, str) else tags_value)) if t][:MAX_TAGS]
        occurred = meta.get("date") if isinstance(meta.get("date"), str) else None
        title = _short(str(meta.get("title") or file.stem))
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
                    _append(items, item, root)
    return items, skipped


def import_markdown(cube: MemCube, path: Path | str, *, progress: Progress = silent) -> ImportSummary:
    items, skipped = _markdown(Path(path))
    _check_dates(items)
    summary = ImportSummary(cube.name, str(path), skipped=skipped)
    return _add_all(cube, items, summary, progress)


def _check_dates(items: Iterable[dict[str, Any]]) -> None:
    """A front-matter date MemCube cannot read is dropped rather than failing the whole import."""
    from memory.timeutil import stored_from_input

    for item in items:
        if "occurred_at" in item:
            try:
                stored_from_input(item["occurred_at"], field="date")
            except InvalidInput:
                item.pop("occurred_at")
