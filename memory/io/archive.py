"""Portable cubes: export a cube to one archive file and import it anywhere.

An archive is a zip file (``.memcube`` by convention) holding JSON Lines; the format is
documented in ``docs/archive-format.md``:

    manifest.json       format, version, source cube, embedding model (id, dim), counts
    memories.jsonl      one memory per line, every field, with its versions and feedback
    entities.jsonl      one entity per line with the ids of the memories that mention it
    relations.jsonl     one relation per line with the id of the memory it came from
    relations_read.jsonl the relations read from the memories' texts (``memory.io.archive_relations``)
    vectors.jsonl       optional (--with-vectors): {"id", "vector"} base64 float32 LE

Import restores memories with their ids, timestamps, status and history, and adds one
``import`` version row to each. Vectors in the archive are used only when they come from
the very model the target home embeds with; otherwise the memories are re-embedded, which
is how a cube moves from one embedding model to another. The relations read from the texts
come with the archive (read again from the texts when an older archive lacks them); entities,
the graph, the FTS and context indexes are derived from the memories, as always.

Import is idempotent: a memory whose id is already in the cube, or whose exact text is
already live there, is skipped and counted. It scales to archives of 100,000 memories and
more: the archive is read as a stream and every record checked first (a bad one refuses
the archive before anything is written; the checked rows wait in a temporary file), then
written in chunks of a transaction each. A killed import leaves whole records only, and the same import run again finishes
it (issue 19). Every member is read within the bounds of ``memory.io.limits`` (size, line, depth, count: issue 26),
and supersession links that lead nowhere or round a cycle are dropped (``memory.supersession_links``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import zipfile
import zlib
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from memory.errors import InvalidInput, Unavailable
from memory.io import archive_relations, limits
from memory.io.archive_records import check_record
from memory.io.archive_vectors import VectorSpool
from memory.io.checked_spool import CheckedSpool
from memory.io.progress import CHECKING, EMBEDDING, GRAPH, IMPORTING, Progress, silent
from memory.relations import read_relations_many
from memory.retrieval.search import embedding_text
from memory.store import filemodes
from memory.store.import_rows import ImportRow, ImportRun
from memory.store.rows import content_hash
from memory.supersession_links import broken_links
from memory.timeutil import now_stored

if TYPE_CHECKING:
    from memory.cube import MemCube
    from memory.home import MemoryHome

FORMAT = "memcube-archive"
FORMAT_VERSION = 1
# Fields of an exported memory that are not columns of ``memories`` (or are recomputed).
NOT_COLUMNS = {"cube", "feedback", "versions", "row_id", "seq", "embedding_model", "content_hash"}
IMPORT_CLIENT = "memcube-import"
log = logging.getLogger(__name__)
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
    total: int = 0  # records in the archive
    imported: int = 0
    skipped_existing: int = 0  # the id is already in the cube
    skipped_duplicate: int = 0  # the same text is already live in the cube under another id
    vectors_reused: int = 0
    reembedded: int = 0
    archive_model: str | None = None
    cube_model: str | None = None
    skipped_ids: list[str] = field(default_factory=list)  # the first MAX_LISTED_IDS of them
    links_dropped: int = 0  # supersedes / superseded_by links to memories in neither the archive nor the cube, or in a cycle
    # An import into this cube that had begun writing and not finished (killed) when this one started:
    # {"source", "records", "started_at"}. This run finished it if it read the same archive.
    resumed: dict[str, Any] | None = None


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
    read_relations = list(archive_relations.exported(cube.store.graph_rows, [m.id for m in memories if m.status != "deleted"]))
    relation_rows = [
        {**r.model_dump(mode="json"), "memory_id": m.id} for m in memories if m.status != "deleted" for r in m.relations
    ]
    vector_rows = _vectors(cube, ids) if with_vectors else []
    tmp = path.with_name(path.name + ".part")
    tmp.unlink(missing_ok=True)
    # 0600 whatever the umask: an archive holds every memory of the cube (issue 26).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, filemodes.FILE_MODE)
    os.fchmod(fd, filemodes.FILE_MODE)
    with os.fdopen(fd, "w+b") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(_member("memories.jsonl"), "w") as sink:
            count = _jsonl(memory_records(), sink)
        with archive.open(_member("entities.jsonl"), "w") as sink:
            _jsonl(iter(entity_rows), sink)
        with archive.open(_member("relations.jsonl"), "w") as sink:
            _jsonl(iter(relation_rows), sink)
        with archive.open(_member(archive_relations.MEMBER), "w") as sink:
            _jsonl(iter(read_relations), sink)
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
                "relations_read": len(read_relations),
                "vectors": len(vector_rows),
            },
            "files": ["memories.jsonl", "entities.jsonl", "relations.jsonl", archive_relations.MEMBER]
            + (["vectors.jsonl"] if with_vectors else []),
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
        raise InvalidInput(f"{path} is not a regular file" if path.exists() else f"no archive at {path}")
    limits.check_zip_directory(path)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise InvalidInput(f"{path} is not a MemCube archive (not a zip file); make one with `memcube export`") from None


def _manifest(archive: zipfile.ZipFile, path: Path | str) -> dict[str, Any]:
    try:
        info = archive.getinfo("manifest.json")
    except KeyError:
        raise InvalidInput(f"{path} has no manifest.json: not a MemCube archive") from None
    limits.check_member(info, path, limits.MAX_MANIFEST_BYTES)
    try:
        with archive.open(info) as handle:
            raw = handle.read(limits.MAX_MANIFEST_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise InvalidInput(f"{path}: manifest.json cannot be read ({exc})") from None
    if len(raw) > limits.MAX_MANIFEST_BYTES:
        raise InvalidInput(f"{path}: manifest.json is larger than {limits.size_text(limits.MAX_MANIFEST_BYTES)}")
    manifest = limits.parse_json_line(raw, f"{path}: manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not a MemCube archive (manifest format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InvalidInput(
            f"{path} uses archive format {version!r}; this MemCube reads format {FORMAT_VERSION}: upgrade memcube-mcp"
        )
    return manifest


def _records(
    archive: zipfile.ZipFile, name: str, budget: limits.Budget, *, limit: int = limits.MAX_RECORD_BYTES
) -> Generator[dict[str, Any], None, None]:
    """The JSON objects of member ``name``, one a line, each at most ``limit`` bytes; the archive's ``budget`` pays for them."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return
    limits.check_member(info, archive.filename or "the archive", limits.MAX_ARCHIVE_BYTES)
    count = 0
    with archive.open(info) as handle:
        for number, raw in limits.bounded_lines(handle, where=name, limit=limit, budget=budget):
            if not raw.strip():
                continue
            record = limits.parse_json_line(raw, f"{name} line {number}")
            if not isinstance(record, dict):
                raise InvalidInput(f"{name} line {number} is not a JSON object")
            count += 1
            if count > limits.MAX_ARCHIVE_RECORDS:
                raise InvalidInput(f"{name} holds more than {limits.MAX_ARCHIVE_RECORDS:,} records, the most one archive may")
            yield record


# -- import ---------------------------------------------------------------------------

CHUNK = 2_000  # records per transaction when their vectors come with the archive
# At most this many records to embed per chunk: with embedding the bound, a commit (and a step
# of the progress bar) every few seconds rather than every few minutes.
EMBED_CHUNK = 256
CHECK_STEP = 1_000  # records checked between two progress calls
MAX_LISTED_IDS = 1_000  # skipped ids named in the report (the counts are always complete)


def import_archive(
    home: MemoryHome, path: Path | str, *, cube: str | None = None, progress: Progress = silent, graph: bool = True
) -> ImportReport:
    """Restore the archive at ``path`` into ``cube`` (default: the cube it was exported from).

    Every record is checked before anything is opened or written: an archive with one bad
    record is refused whole, naming the line and the field. The records are then written
    in chunks, one transaction each, every record whole (row, versions, FTS, vector, entities,
    graph outbox, context windows). An import that was killed part-way is finished by
    running it again: what it had written is skipped by id, the rest imported
    (``ImportReport.resumed`` says so). ``progress`` hears each stage (``memory.io.progress``).
    With ``graph=False`` the graph changes stay queued for the next server to apply.
    """
    path = Path(path)
    spool_folder = home.root if home.root.is_dir() else None  # a refused archive leaves no folder behind
    budget = limits.Budget(limits.MAX_ARCHIVE_BYTES, f"{path.name} (uncompressed)")
    with _open(path) as archive, CheckedSpool(spool_folder) as checked:
        manifest = _manifest(archive, path)
        archived, links = _check_all(archive, checked, progress, _expected(manifest), budget)
        with closing(_records(archive, archive_relations.MEMBER, budget)) as lines:  # closed if a bad line refuses the archive
            read_relations = archive_relations.carried(archive, lines, archived)
        embedding = manifest.get("embedding")
        archive_model = embedding.get("model_id") if isinstance(embedding, dict) else None
        model_id = home.embedder.model_id
        # Vectors from another model are of no use here: those memories are embedded with this home's.
        wanted = (
            _records(archive, "vectors.jsonl", budget, limit=limits.MAX_VECTOR_RECORD_BYTES)
            if archive_model == model_id
            else iter(())
        )
        with VectorSpool.of(wanted, spool_folder, ids=archived, dim=home.embedder.dim) as vectors:
            target = home.cube(cube or manifest.get("cube") or "default", create=True)
            target.ensure_vectors()  # the vector table exists, sized for this home's model
            report = ImportReport(cube=target.name, archive_model=archive_model, cube_model=model_id, total=checked.count)
            report.resumed = target.store.unfinished_import()
            broken = broken_links(links, lambda ids: _existing(target, archived, ids))
            report.links_dropped = sum(len(fields) for fields in broken.values())
            if broken:
                log.warning(
                    "%s: dropped %d supersession links that lead nowhere or round a cycle", path.name, report.links_dropped
                )
            unfinished = {"source": path.name, "records": checked.count, "started_at": now_stored()}
            with target.store.bulk_writes():
                rows = _without_links(iter(checked), broken)
                _write(target, rows, vectors, read_relations, report, progress, source=path.name, unfinished=unfinished)
    # Memories still without a vector from this model (written by a process that raced this one,
    # or already in the cube) are embedded now, so the import ends with every vector in place.
    stale = len(target.store.stale_embeddings(model_id, 1_000_000))
    if stale:
        progress(EMBEDDING, 0, stale)
        target._vectors_ready = False  # noqa: SLF001 - ask ensure_vectors to look for stale rows again
        target.ensure_vectors()
        progress(EMBEDDING, stale, stale)
        report.reembedded += stale
    target.store.finish_import()
    target.try_merge_fulltext()  # an import is the bulk of a cube's growth: its searches start merged
    if graph:
        _apply_graph(target, progress)
    return report


def _expected(manifest: dict[str, Any]) -> int | None:
    counts = manifest.get("counts")
    number = counts.get("memories") if isinstance(counts, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) and number >= 0 else None


def _check_all(
    archive: zipfile.ZipFile, checked: CheckedSpool, progress: Progress, expected: int | None, budget: limits.Budget
) -> tuple[set[str], dict[str, tuple[str | None, str | None]]]:
    """Validate every record (issue 13) into ``checked`` before anything is written: the archive is refused whole or stored in full.

    Returns the ids in the archive and the supersession links of the records that have any.
    """
    progress(CHECKING, 0, expected)
    ids: set[str] = set()
    links: dict[str, tuple[str | None, str | None]] = {}
    for number, record in enumerate(_records(archive, "memories.jsonl", budget), start=1):
        item = check_record(record, f"memories.jsonl line {number}")
        checked.add(item)
        ids.add(item.row["id"])
        if item.row["supersedes"] or item.row["superseded_by"]:
            links[item.row["id"]] = (item.row["supersedes"], item.row["superseded_by"])
        if number % CHECK_STEP == 0:
            progress(CHECKING, number, expected)
    progress(CHECKING, checked.count, checked.count)
    return ids, links


def _existing(cube: MemCube, archived: set[str], ids: Iterable[str]) -> set[str]:
    """Those of ``ids`` that are in the archive or already in ``cube``."""
    wanted = set(ids)
    outside = sorted(wanted - archived)
    return (wanted & archived) | (cube.store.import_known(outside, [])[0] if outside else set())


def _without_links(records: Iterator[ImportRow], broken: dict[str, set[str]]) -> Iterator[ImportRow]:
    """The records, with the supersession links in ``broken`` cleared."""
    for record in records:
        for name in broken.get(record.row["id"], ()):
            record.row[name] = None
        yield record


def _chunks(
    records: Iterator[ImportRow], vectors: VectorSpool, read_relations: dict[str, list[dict[str, Any]]] | None, dim: int
) -> Iterator[list[ImportRow]]:
    """Records with the archive's vector for each live one and the relations it carries for them
    (``read_relations`` None: none carried, they are read from the texts), in chunks of ``CHUNK``
    or ``EMBED_CHUNK`` to embed."""
    chunk: list[ImportRow] = []
    to_embed = 0
    for record in records:
        record.vector = vectors.get(record.row["id"], dim) if record.live else None
        if read_relations is not None:
            record.relations = read_relations.get(record.row["id"], [])
        chunk.append(record)
        to_embed += record.live and record.vector is None
        if len(chunk) >= CHUNK or to_embed >= EMBED_CHUNK:
            yield chunk
            chunk, to_embed = [], 0
    if chunk:
        yield chunk


def _write(
    cube: MemCube,
    records: Iterator[ImportRow],
    vectors: VectorSpool,
    read_relations: dict[str, list[dict[str, Any]]] | None,
    report: ImportReport,
    progress: Progress,
    *,
    source: str,
    unfinished: dict[str, Any],
) -> None:
    note = {"source": {"old": None, "new": source}}
    at = now_stored()
    done = 0
    progress(IMPORTING, 0, report.total)
    for chunk in _chunks(records, vectors, read_relations, cube.embedder.dim):
        _write_chunk(cube, chunk, report, note=note, at=at, unfinished=unfinished)
        done += len(chunk)
        progress(IMPORTING, done, report.total)


def _write_chunk(
    cube: MemCube,
    rows: list[ImportRow],
    report: ImportReport,
    *,
    note: dict[str, Any],
    at: str,
    unfinished: dict[str, Any],
) -> None:
    """One transaction: the chunk's new records, each with a vector (the archive's, or embedded here first)."""
    model_id = cube.embedder.model_id
    hashes = [content_hash(item.row["text"]) for item in rows]
    # What the store would skip, read before the (slow) embedding so a resumed import embeds
    # only what it will write; the store checks again inside its transaction.
    taken, live = cube.store.import_known([item.row["id"] for item in rows], hashes)
    # The live records the store will write; deleted ones need neither a vector nor relations.
    written = [
        i
        for i, (item, hash_) in enumerate(zip(rows, hashes, strict=True))
        if item.live and item.row["id"] not in taken and hash_ not in live
    ]
    missing = [i for i in written if rows[i].vector is None]
    if missing:
        embedded = cube.embedder.embed([embedding_text(rows[i].row["text"]) for i in missing])
        for position, i in enumerate(missing):
            rows[i].vector = embedded[position]
    # An archive written before it carried them: the relations are read from the texts, as a write
    # reads them (not for a memory whose client gave relations: those win).
    unread = [i for i in written if rows[i].relations is None and not rows[i].row["relations"]]
    if unread:
        for i, found in zip(unread, read_relations_many([rows[i].row["text"] for i in unread], cube.knows_entity()), strict=True):
            rows[i].relations = found
    outcomes = cube.store.import_rows(rows, ImportRun(model_id, IMPORT_CLIENT, note, at, unfinished))
    fresh = set(missing)
    for i, (item, outcome) in enumerate(zip(rows, outcomes, strict=True)):
        if outcome in ("existing", "duplicate"):
            if outcome == "existing":
                report.skipped_existing += 1
            else:
                report.skipped_duplicate += 1
            if len(report.skipped_ids) < MAX_LISTED_IDS:
                report.skipped_ids.append(item.row["id"])
            continue
        report.imported += 1
        if outcome == "imported with vector":
            if i in fresh:
                report.reembedded += 1
            else:
                report.vectors_reused += 1


def _apply_graph(cube: MemCube, progress: Progress) -> None:
    """Apply the graph changes the import queued, batch by batch; like ``try_sync_graph``, a failure
    leaves them queued (the next server or ``memcube doctor`` applies them) and is logged, not raised."""
    pending = cube.store.counts()["graph_pending"]
    if not pending:
        return
    done = 0
    progress(GRAPH, 0, pending)
    try:
        while batch := cube.graph_store.apply_outbox(cube.store):
            done += batch
            progress(GRAPH, min(done, pending), pending)
    except Unavailable as exc:
        log.warning("cube %s: graph not updated yet: %s", cube.name, exc)
    except Exception:  # the queued work stays in the outbox; doctor --rebuild-graph is the way out
        log.exception("cube %s: applying queued graph work failed; it stays queued", cube.name)
