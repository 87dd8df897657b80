"""Portable cubes: export a cube to one archive file and import it anywhere.

An archive is a zip file (``.memcube`` by convention) holding JSON Lines; the format is
documented in ``docs/archive-format.md``:

    manifest.json       format, version, source cube, embedding model (id, dim), counts
    memories.jsonl      one memory per line, every field, with its versions and feedback
    entities.jsonl      one entity per line with the ids of the memories that mention it
    relations.jsonl     one relation per line with the id of the memory it came from
    vectors.jsonl       optional (--with-vectors): {"id", "vector"} base64 float32 LE

Import restores memories with their ids, timestamps, status and history, and adds one
``import`` version row to each. Vectors in the archive are used only when they come from
the very model the target home embeds with; otherwise the memories are re-embedded, which
is how a cube moves from one embedding model to another. Entities, relations, the graph,
the FTS and context indexes are derived from the memories, as always.

Import is idempotent: a memory whose id is already in the cube, or whose exact text is
already live there, is skipped and counted.
"""

from __future__ import annotations

import base64
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from memory.errors import InvalidInput
from memory.io.archive_records import CheckedRecord, check_record
from memory.store.cube_store import ImportRow
from memory.timeutil import now_stored

if TYPE_CHECKING:
    from memory.cube import MemCube
    from memory.home import MemoryHome

FORMAT = "memcube-archive"
FORMAT_VERSION = 1
# Fields of an exported memory that are not columns of ``memories`` (or are recomputed).
NOT_COLUMNS = {"cube", "feedback", "versions", "row_id", "seq", "embedding_model", "content_hash"}
IMPORT_CLIENT = "memcube-import"
STATUSES = ("active", "archived", "deleted")


@dataclass
class ExportReport:
    cube: str
    path: str
    memories: int
    entities: int
    relations: int
    vectors: int
    embedding_model: str | None


@dataclass
class ImportReport:
    cube: str
    imported: int = 0
    skipped_existing: int = 0  # the id is already in the cube
    skipped_duplicate: int = 0  # the same text is already live in the cube under another id
    vectors_reused: int = 0
    reembedded: int = 0
    archive_model: str | None = None
    cube_model: str | None = None
    skipped_ids: list[str] = field(default_factory=list)


def _jsonl(records: Iterator[dict[str, Any]], sink: IO[bytes]) -> int:
    count = 0
    for record in records:
        sink.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        count += 1
    return count


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memcube-mcp")
    except PackageNotFoundError:
        return "0+unknown"


# -- export ---------------------------------------------------------------------------


def export_cube(cube: MemCube, path: Path | str, *, with_vectors: bool = False, include_deleted: bool = False) -> ExportReport:
    """Write ``cube`` to the archive at ``path`` (overwritten). Deleted memories stay behind unless asked for."""
    from memory.store.schema import SCHEMA_VERSION

    path = Path(path)
    cube.flush_access()
    memories = [m for m in cube.store.iter_all() if include_deleted or m.status != "deleted"]
    ids = [m.id for m in memories]
    histories = _histories(cube, ids)
    feedback = {m.id: m.feedback for m in cube.store.get_many(ids)} if ids else {}
    model_id = cube.store.meta("embedding_model")
    dim = cube.store.meta("embedding_dim")

    def memory_records() -> Iterator[dict[str, Any]]:
        for memory in memories:
            record = memory.model_dump(mode="json", exclude={"cube", "feedback"})
            record["feedback"] = [f.model_dump(mode="json") for f in feedback.get(memory.id, [])]
            record["versions"] = histories.get(memory.id, [])
            yield record

    entity_rows = _entities(cube, include_deleted)
    relation_rows = [
        {**r.model_dump(mode="json"), "memory_id": m.id} for m in memories if m.status != "deleted" for r in m.relations
    ]
    vector_rows = _vectors(cube, ids) if with_vectors else []
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(_member("memories.jsonl"), "w") as sink:
            count = _jsonl(memory_records(), sink)
        with archive.open(_member("entities.jsonl"), "w") as sink:
            _jsonl(iter(entity_rows), sink)
        with archive.open(_member("relations.jsonl"), "w") as sink:
            _jsonl(iter(relation_rows), sink)
        if with_vectors:
            with archive.open(_member("vectors.jsonl"), "w") as sink:
                _jsonl(iter(vector_rows), sink)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": now_stored(),
            "memcube_version": _version(),
            "schema_version": SCHEMA_VERSION,
            "cube": cube.name,
            "embedding": {"model_id": model_id, "dim": int(dim) if dim else None, "vectors_included": with_vectors},
            "counts": {
                "memories": count,
                "entities": len(entity_rows),
                "relations": len(relation_rows),
                "vectors": len(vector_rows),
            },
            "files": ["memories.jsonl", "entities.jsonl", "relations.jsonl"] + (["vectors.jsonl"] if with_vectors else []),
        }
        archive.writestr(_member("manifest.json"), json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return ExportReport(cube.name, str(path), count, len(entity_rows), len(relation_rows), len(vector_rows), model_id)


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _histories(cube: MemCube, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for memory_id, entry in cube.store.all_versions():
        if memory_id in out:
            out[memory_id].append(entry)
    return out


def _entities(cube: MemCube, include_deleted: bool) -> list[dict[str, Any]]:
    rows = cube.store.entity_mentions(include_deleted=include_deleted)
    entities: dict[str, dict[str, Any]] = {}
    for norm, name, memory_id in rows:
        entry = entities.setdefault(norm, {"name": name, "key": norm, "memories": []})
        entry["memories"].append(memory_id)
    return list(entities.values())


def _vectors(cube: MemCube, ids: list[str]) -> list[dict[str, Any]]:
    wanted = set(ids)
    return [
        {"id": i, "vector": base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")}
        for i, vector in cube.store.stored_vectors()
        if i in wanted
    ]


# -- reading an archive ---------------------------------------------------------------


def read_manifest(path: Path | str) -> dict[str, Any]:
    """The archive's manifest, checked; raises ``InvalidInput`` saying what is wrong with the file."""
    with _open(path) as archive:
        return _manifest(archive, path)


def _open(path: Path | str) -> zipfile.ZipFile:
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no archive at {path}")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InvalidInput(f"{path} is not a MemCube archive (not a zip file); make one with `memcube export`") from None


def _manifest(archive: zipfile.ZipFile, path: Path | str) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read("manifest.json"))
    except KeyError:
        raise InvalidInput(f"{path} has no manifest.json: not a MemCube archive") from None
    except ValueError as exc:
        raise InvalidInput(f"{path}: manifest.json is not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidInput(f"{path}: manifest.json is nested too deeply") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not a MemCube archive (manifest format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InvalidInput(
            f"{path} uses archive format {version!r}; this MemCube reads format {FORMAT_VERSION}: upgrade memcube-mcp"
        )
    return manifest


def _records(archive: zipfile.ZipFile, name: str) -> Iterator[dict[str, Any]]:
    try:
        handle = archive.open(name)
    except KeyError:
        return
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError as exc:
                raise InvalidInput(f"{name} line {number} is not valid JSON: {exc}") from None
            except RecursionError:
                raise InvalidInput(f"{name} line {number} is nested too deeply to be a memory record") from None
            if not isinstance(record, dict):
                raise InvalidInput(f"{name} line {number} is not a JSON object")
            yield record


# -- import ---------------------------------------------------------------------------


def import_archive(home: MemoryHome, path: Path | str, *, cube: str | None = None) -> ImportReport:
    """Restore the archive at ``path`` into ``cube`` (default: the cube it was exported from)."""
    with _open(path) as archive:
        manifest = _manifest(archive, path)
        memories = list(_records(archive, "memories.jsonl"))
        vectors = {
            r["id"]: r["vector"]
            for r in _records(archive, "vectors.jsonl")
            if isinstance(r.get("id"), str) and isinstance(r.get("vector"), str)
        }
    # One validation for every record before anything is opened or written (issue 13):
    # the archive is refused as a whole, with the line and field, or stored in full.
    checked = [check_record(record, f"memories.jsonl line {number}") for number, record in enumerate(memories, start=1)]
    target = home.cube(cube or manifest.get("cube") or "default", create=True)
    target.ensure_vectors()  # the vector table exists, sized for this home's model
    model_id = target.embedder.model_id
    embedding = manifest.get("embedding")
    archive_model = embedding.get("model_id") if isinstance(embedding, dict) else None
    reuse = archive_model == model_id and bool(vectors)
    report = ImportReport(cube=target.name, archive_model=archive_model, cube_model=model_id)
    _insert(target, checked, vectors if reuse else {}, model_id, report, source=Path(path).name)
    # Whatever came without a usable vector is embedded now with this home's model.
    target._vectors_ready = False  # noqa: SLF001 - ask ensure_vectors to look for stale rows again
    stale = len(target.store.stale_embeddings(model_id, 1_000_000))
    target.ensure_vectors()
    report.reembedded = stale
    target.try_sync_graph()
    return report


def _insert(
    cube: MemCube, records: list[CheckedRecord], vectors: dict[str, str], model_id: str, report: ImportReport, *, source: str
) -> None:
    dim = cube.embedder.dim
    rows = [
        ImportRow(
            row=record.row,
            versions=[
                {"version": e.version, "op": e.op, "at": e.at, "client": e.client, "changes": e.changes} for e in record.versions
            ],
            feedback=[{"at": e.at, "tried": e.tried, "result": e.result, "client": e.client} for e in record.feedback],
            vector=_decode(vectors.get(record.row["id"]), dim) if record.row["status"] != "deleted" else None,
        )
        for record in records
    ]
    outcomes = cube.store.import_rows(
        rows, model_id=model_id, client=IMPORT_CLIENT, note={"source": {"old": None, "new": source}}, at=now_stored()
    )
    for item, outcome in zip(rows, outcomes, strict=True):
        if outcome == "existing":
            report.skipped_existing += 1
            report.skipped_ids.append(item.row["id"])
        elif outcome == "duplicate":
            report.skipped_duplicate += 1
            report.skipped_ids.append(item.row["id"])
        else:
            report.imported += 1
            report.vectors_reused += outcome == "imported with vector"


def _decode(encoded: str | None, dim: int) -> np.ndarray | None:
    if not encoded:
        return None
    try:
        vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)
    except (ValueError, TypeError):
        return None
    return vector if vector.shape == (dim,) else None
