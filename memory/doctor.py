"""Health checks for a cube: is every derived store in step with SQLite?

Checks SQLite's own integrity, that every live memory has exactly one vector from the
configured model and one FTS row (and, in a thread, one context window), that deleted
memories have none of these, and that the
Kuzu graph holds exactly the active memories. Repairs what it can: pending graph work
is applied, a graph that disagrees is rebuilt, stale vectors are recomputed.

Doctor never destroys the last copy of anything (issue 26): a ``memory.db`` that is not a
MemCube database (a symbolic link, not SQLite, empty, without MemCube's tables) is reported
as damaged and not opened; a graph that knows memories the database does not is left as
it is, since rebuilding it from that database would delete the last trace of them; copies
a server saved beside a database that went away (``memory.db.rescued-*``) are compared with
it. Each cube is checked on its own: one damaged cube does not stop the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from memory.cube import MemCube
from memory.doctor_checks import repair_rows, repair_supersession_links
from memory.errors import Unavailable
from memory.graph.graph_store import GraphStore
from memory.home import MemoryHome, damage_reason
from memory.store import db_file
from memory.supersession_repair import repair_supersessions

# Findings that no repair of this run answers: the cube stays unhealthy with them.
UNREPAIRED = ("SQLite", "graph not", "supersession: to restore", "memory ", "damaged", "graph knows", "rescued copy")


@dataclass
class DoctorReport:
    cube: str
    findings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    healthy: bool = True
    damaged: bool = False

    def problem(self, text: str) -> None:
        self.findings.append(text)
        self.healthy = False

    def render(self) -> str:
        state = "DAMAGED" if self.damaged else "ok" if self.healthy else "PROBLEMS"
        lines = [f"cube {self.cube}: {state}"]
        lines += [f"  problem: {f}" for f in self.findings]
        lines += [f"  repaired: {r}" for r in self.repairs]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def check_home_cube(
    home: MemoryHome, name: str, *, rebuild_graph: bool = False, reembed: bool = False, dry_run: bool = False
) -> DoctorReport:
    """``check_cube`` for one cube of ``home``, its file looked at before it is opened; never raises for
    the damage it finds, so a home-wide run goes on with the next cube (issue 26)."""
    folder = home.cubes_dir / name
    path = folder / "memory.db"
    first = DoctorReport(name)
    if os.path.lexists(path) and (problem := db_file.damage(path)) is not None:
        first.damaged = True
        first.problem(f"damaged: {problem}. It was not opened, so nothing in it was changed")
        _graph_trace(folder, first)
        _compare_rescued(path, set(), first)
        first.notes.append(
            "put back a good copy as memory.db (a rescued copy listed here, or one from `memcube backup`), "
            "or move the cube's folder aside, then run doctor again"
        )
        return first
    if db_file.rescued_copies(path):
        try:
            _compare_rescued(path, db_file.known_ids(path), first)
        except Exception as exc:  # the cube's own check below says what is wrong with memory.db
            first.notes.append(f"rescued copies not compared: {type(exc).__name__}: {exc}")
    try:
        report = check_cube(home.cube(name), rebuild_graph=rebuild_graph, reembed=reembed, dry_run=dry_run)
    except Exception as exc:  # the doctor reports; it never stops at the damage it is there to find
        first.damaged = True
        first.problem(f"damaged: {damage_reason(name, exc)}")
        return first
    report.findings[:0] = first.findings
    report.notes[:0] = first.notes
    report.healthy = report.healthy and first.healthy
    return report


def _graph_trace(folder: Path, report: DoctorReport) -> None:
    """What the graph of a cube whose database is damaged still knows; it is left as it is."""
    if not (folder / "graph" / "graph.kuzu").exists():
        return
    graph = GraphStore(folder / "graph" / "graph.kuzu")
    try:
        count = len(graph.memory_ids())
    except Exception as exc:  # a damaged graph too: say so and go on
        report.notes.append(f"the graph could not be read either ({type(exc).__name__}: {exc})")
        return
    finally:
        graph.close()
    if count:
        report.problem(
            f"graph knows {count} memories the database does not: it was left as it is (rebuilt from this "
            "database it would lose the last trace of them)"
        )


def _compare_rescued(path: Path, known: set[str], report: DoctorReport) -> None:
    """Copies saved beside ``path`` by a server whose database went away, against what ``path`` knows."""
    for copy in db_file.rescued_copies(path):
        try:
            missing = len(db_file.known_ids(copy) - known)
        except Exception as exc:  # a copy that cannot be read is reported, never removed
            report.notes.append(f"{copy.name} cannot be read ({type(exc).__name__}: {exc})")
            continue
        if missing:
            report.problem(
                f"rescued copy {copy.name} (saved by a server when {path.name} went away) holds {missing} memories "
                f"{path.name} does not have: to keep them, stop every server on this home and move it over {path.name}"
            )
        else:
            report.notes.append(f"{copy.name} holds no memory {path.name} does not have; it may be deleted")


def check_cube(cube: MemCube, *, rebuild_graph: bool = False, reembed: bool = False, dry_run: bool = False) -> DoctorReport:
    """``dry_run`` lists what the supersession repair (issue 18) would restore, without restoring it."""
    report = DoctorReport(cube.name)
    store = cube.folder_store
    repaired, unreadable = repair_rows(cube)
    if repaired:
        report.problem(f"{repaired} memories held fields that no reader can take (they jam search and the graph outbox)")
        report.repairs.append(
            f"repaired {repaired} memories: valid parts kept, the rest reset (memory_history shows a 'repair' version)"
        )
    for problem in unreadable:
        report.problem(problem)
    if unlinked := repair_supersession_links(cube):
        report.problem(f"supersession links: {unlinked} memories linked to a memory not in the cube, or round a cycle")
        report.repairs.append(f"cleared those links on {unlinked} memories (memory_history shows a 'repair' version)")
    integrity = store.integrity()
    if integrity != "ok":
        report.problem(f"SQLite integrity_check: {integrity}")
    fts_missing, fts_extra = store.drift("memory_fts")
    window_missing, window_extra = store.drift("memory_context_fts")
    if fts_missing or fts_extra:
        report.problem(f"FTS index: {fts_missing} live memories missing, {fts_extra} stray rows")
        store.rebuild_fts()
        report.repairs.append("rebuilt the FTS index")
    if window_missing or window_extra:
        report.problem(f"context windows: {window_missing} threaded memories missing, {window_extra} stray rows")
        store.rebuild_context_windows()
        report.repairs.append("rebuilt the context windows")
    if drift := store.status_count_drift():
        report.problem("status counts: " + ", ".join(f"{s} kept {k}, counted {c}" for s, (k, c) in sorted(drift.items())))
        store.recount_statuses()
        report.repairs.append("recounted the memories of each status")

    if reembed:
        count = cube.reembed()
        report.repairs.append(f"re-embedded {count} memories")
    else:
        stale = len(cube.store.stale_embeddings(cube.embedder.model_id, 1_000_000))
        if stale:
            report.findings.append(f"{stale} memories carry vectors from another model; re-embedding")
            cube._vectors_ready = False  # noqa: SLF001 - doctor is the cube's own repair tool
        cube.ensure_vectors()
    vec_missing, vec_extra = store.drift("memory_vec")
    if vec_missing or vec_extra:
        report.problem(f"vectors: {vec_missing} live memories without a vector, {vec_extra} stray vectors")
        store.drop_stray_vectors()
        cube._vectors_ready = False  # noqa: SLF001
        cube.ensure_vectors()
        report.repairs.append("recomputed missing vectors and dropped stray ones")

    _repair_supersessions(cube, report, dry_run=dry_run)
    if read := cube.read_old_relations():
        report.repairs.append(f"read relations from the texts of older memories ({read} written before schema 11)")
    if not _graph_only_memories(cube, report):
        _check_graph(cube, report, rebuild_graph=rebuild_graph)
    if not report.healthy and report.repairs and not any(f.startswith(UNREPAIRED) for f in report.findings):
        report.healthy = True  # problems that were repaired leave the cube healthy; say so
    return report


def _graph_only_memories(cube: MemCube, report: DoctorReport) -> set[str]:
    """Memories the graph knows and the database does not: then the graph is the last trace of
    them, and is left as it is (issue 26)."""
    try:
        in_graph = cube.graph_store.memory_ids()
    except Exception:  # an unreadable graph: ``_check_graph`` says why and rebuilds it
        return set()
    unknown = in_graph - cube.store.known_ids(sorted(in_graph))
    if unknown:
        shown = ", ".join(sorted(unknown)[:3]) + (", ..." if len(unknown) > 3 else "")
        report.problem(
            f"graph knows {len(unknown)} memories the database does not ({shown}): memory.db may have lost them, "
            "so the graph was left as it is (rebuilt from memory.db it would lose the last trace of them). Put back "
            "a copy that has them (memory.db.rescued-* beside it, or a backup) as memory.db; if memory.db is right "
            "as it is, move the cube's graph folder aside and run doctor again"
        )
    return unknown


def _check_graph(cube: MemCube, report: DoctorReport, *, rebuild_graph: bool) -> None:
    store = cube.folder_store
    try:
        if rebuild_graph:
            count = cube.rebuild_graph()
            report.repairs.append(f"rebuilt the graph from {count} active memories")
        else:
            pending = cube.store.counts()["graph_pending"]
            try:
                applied = cube.sync_graph()
            except Unavailable:
                raise
            except Exception as exc:  # a jammed outbox: what is queued cannot be applied; derive it all again
                report.problem(
                    f"graph outbox jammed: {pending} queued changes could not be applied ({type(exc).__name__}: {exc})"
                )
                count = cube.rebuild_graph()
                report.repairs.append(f"rebuilt the graph from {count} memories and emptied the outbox")
                applied = 0
            if applied:
                report.repairs.append(f"applied {applied} pending graph changes")
        active = set(store.graph_member_ids())
        in_graph = cube.graph_store.memory_ids()
        if active != in_graph:
            report.problem(
                f"graph: {len(active - in_graph)} active memories missing, {len(in_graph - active)} stray memory nodes"
            )
            count = cube.rebuild_graph()
            report.repairs.append(f"rebuilt the graph from SQLite ({count} memories)")
    except Unavailable as exc:
        report.problem(f"graph not checked: {exc}")
    except Exception as exc:  # the doctor reports; it never crashes on the damage it is there to find
        report.problem(f"graph not checked: {type(exc).__name__}: {exc}")


def _repair_supersessions(cube: MemCube, report: DoctorReport, *, dry_run: bool) -> None:
    """Memories the rule before issue 18 archived: restore those the current rule keeps."""
    rejudged = repair_supersessions(cube, dry_run=dry_run)
    kept = [r for r in rejudged if r.kept_by_new_rule]
    if not rejudged:
        return
    report.findings.append(
        f"supersession: {len(rejudged)} memories archived by the old rule; the current rule keeps {len(kept)} of them"
    )
    for r in rejudged:
        what = (
            "would restore"
            if dry_run and r.kept_by_new_rule
            else "restored"
            if r.restored
            else f"left archived ({r.error})"
            if r.error
            else "stays archived"
        )
        report.findings.append(
            f"supersession: {what} {r.id} {r.text[:80]!r} (archived for {r.superseded_by}; now: {r.verdict}, {r.reason})"
        )
    restored = sum(r.restored for r in rejudged)
    if restored:
        report.repairs.append(f"restored {restored} memories the old supersession rule had hidden")
    if dry_run and kept:
        report.problem(f"supersession: to restore: {len(kept)} hidden memories; run doctor without --dry-run")
