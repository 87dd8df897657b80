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
from memory.errors import Unavailable


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


def check_cube(cube: MemCube, *, rebuild_graph: bool = False, reembed: bool = False) -> DoctorReport:
    report = DoctorReport(cube.name)
    store = cube.store
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

    try:
        if rebuild_graph:
            count = cube.rebuild_graph()
            report.repairs.append(f"rebuilt the graph from {count} active memories")
        else:
            applied = cube.sync_graph()
            if applied:
                report.repairs.append(f"applied {applied} pending graph changes")
        active = set(store.graph_member_ids())
        in_graph = cube.graph_store.memory_ids()
        if active != in_graph:
            report.problem(f"graph: {len(active - in_graph)} active memories missing, {len(in_graph - active)} stray memory nodes")
            cube.rebuild_graph()
            report.repairs.append("rebuilt the graph from SQLite")
    except Unavailable as exc:
        report.problem(f"graph not checked: {exc}")
    # Problems that were repaired leave the cube healthy; say so.
    if not report.healthy and report.repairs and not any(f.startswith(("SQLite", "graph not")) for f in report.findings):
        report.healthy = True
    return report
