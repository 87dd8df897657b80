"""Health checks for a cube: is every derived store in step with SQLite?

Checks SQLite's own integrity, that every live memory has exactly one vector from the
configured model and one FTS row (and, in a thread, one context window), that deleted
memories have none of these, and that the
Kuzu graph holds exactly the active memories. Repairs what it can: pending graph work
is applied, a graph that disagrees is rebuilt, stale vectors are recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memory.cube import MemCube
from memory.doctor_checks import repair_rows
from memory.errors import Unavailable
from memory.supersession_repair import repair_supersessions


@dataclass
class DoctorReport:
    cube: str
    findings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    healthy: bool = True

    def problem(self, text: str) -> None:
        self.findings.append(text)
        self.healthy = False

    def render(self) -> str:
        lines = [f"cube {self.cube}: {'ok' if self.healthy else 'PROBLEMS'}"]
        lines += [f"  problem: {f}" for f in self.findings]
        lines += [f"  repaired: {r}" for r in self.repairs]
        return "\n".join(lines)


def check_cube(cube: MemCube, *, rebuild_graph: bool = False, reembed: bool = False, dry_run: bool = False) -> DoctorReport:
    """``dry_run`` lists what the supersession repair (issue 18) would restore, without restoring it."""
    report = DoctorReport(cube.name)
    store = cube.store
    repaired, unreadable = repair_rows(cube)
    if repaired:
        report.problem(f"{repaired} memories held fields that no reader can take (they jam search and the graph outbox)")
        report.repairs.append(
            f"repaired {repaired} memories: valid parts kept, the rest reset (memory_history shows a 'repair' version)"
        )
    for problem in unreadable:
        report.problem(problem)
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
    # Problems that were repaired leave the cube healthy; say so.
    unrepaired = ("SQLite", "graph not", "supersession: to restore", "memory ")
    if not report.healthy and report.repairs and not any(f.startswith(unrepaired) for f in report.findings):
        report.healthy = True
    return report


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
