"""Health checks for a cube: is every derived store in step with SQLite?

Checks SQLite's own integrity, that every live memory has exactly one vector from the
configured model and one FTS row (and, in a thread, one context window), that deleted
memories have none of these, and that the
Kuzu graph holds exactly the active memories. Repairs what it can: pending graph work
is applied, a graph that disagrees is rebuilt, stale vectors are recomputed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from . import context
from .cube import MemCube
from .doctor_checks import repair_rows
from .errors import Unavailable
from .graph import IN_GRAPH


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


LIVE = "m.status != 'deleted'"


def _drift(conn: sqlite3.Connection, table: str, belongs: str) -> tuple[int, int]:
    """(memories that should have a row in ``table`` and do not, rows of ``table`` for no such memory)."""
    missing = conn.execute(
        f"SELECT count(*) FROM memories m WHERE {belongs} AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.rowid = m.row_id)"
    ).fetchone()[0]
    extra = conn.execute(
        f"SELECT count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM memories m WHERE m.row_id = t.rowid AND {belongs})"
    ).fetchone()[0]
    return missing, extra


def check_cube(cube: MemCube, *, rebuild_graph: bool = False, reembed: bool = False) -> DoctorReport:
    report = DoctorReport(cube.name)
    conn = cube.store.conn
    repaired, unreadable = repair_rows(cube)
    if repaired:
        report.problem(f"{repaired} memories held fields that no reader can take (they jam search and the graph outbox)")
        report.repairs.append(f"repaired {repaired} memories: valid parts kept, the rest reset (memory_history shows a 'repair' version)")
    for problem in unreadable:
        report.problem(problem)
    with cube.store.lock:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            report.problem(f"SQLite integrity_check: {integrity}")
        fts_missing, fts_extra = _drift(conn, "memory_fts", LIVE)
        window_missing, window_extra = _drift(conn, "memory_context_fts", f"{LIVE} AND m.session_id IS NOT NULL")
    if fts_missing or fts_extra:
        report.problem(f"FTS index: {fts_missing} live memories missing, {fts_extra} stray rows")
        with cube.store.write() as w:
            w.execute("DELETE FROM memory_fts")
            w.execute(
                "INSERT INTO memory_fts(rowid, text, tags, entities) SELECT row_id, text, "
                "(SELECT group_concat(value, ' ') FROM json_each(tags)), (SELECT group_concat(value, ' ') FROM json_each(entities)) "
                "FROM memories WHERE status != 'deleted'"
            )
        report.repairs.append("rebuilt the FTS index")
    if window_missing or window_extra:
        report.problem(f"context windows: {window_missing} threaded memories missing, {window_extra} stray rows")
        with cube.store.write() as w:
            w.execute("DELETE FROM memory_context_fts")
            context.refresh_threads(w, [r[0] for r in w.execute("SELECT DISTINCT session_id FROM memories WHERE session_id IS NOT NULL")])
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
    with cube.store.lock:
        vec_missing, vec_extra = _drift(conn, "memory_vec", LIVE)
    if vec_missing or vec_extra:
        report.problem(f"vectors: {vec_missing} live memories without a vector, {vec_extra} stray vectors")
        with cube.store.write() as w:
            w.execute("DELETE FROM memory_vec WHERE rowid NOT IN (SELECT row_id FROM memories WHERE status != 'deleted')")
            w.execute("UPDATE memories SET embedding_model = NULL WHERE status != 'deleted' AND row_id NOT IN (SELECT rowid FROM memory_vec)")
        cube._vectors_ready = False  # noqa: SLF001
        cube.ensure_vectors()
        report.repairs.append("recomputed missing vectors and dropped stray ones")

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
                report.problem(f"graph outbox jammed: {pending} queued changes could not be applied ({type(exc).__name__}: {exc})")
                count = cube.rebuild_graph()
                report.repairs.append(f"rebuilt the graph from {count} memories and emptied the outbox")
                applied = 0
            if applied:
                report.repairs.append(f"applied {applied} pending graph changes")
        with cube.store.lock:
            active = {r[0] for r in conn.execute(f"SELECT id FROM memories WHERE {IN_GRAPH}")}
        in_graph = cube.graph_store.memory_ids()
        if active != in_graph:
            report.problem(f"graph: {len(active - in_graph)} active memories missing, {len(in_graph - active)} stray memory nodes")
            count = cube.rebuild_graph()
            report.repairs.append(f"rebuilt the graph from SQLite ({count} memories)")
    except Unavailable as exc:
        report.problem(f"graph not checked: {exc}")
    except Exception as exc:  # the doctor reports; it never crashes on the damage it is there to find
        report.problem(f"graph not checked: {type(exc).__name__}: {exc}")
    # Problems that were repaired leave the cube healthy; say so.
    if not report.healthy and report.repairs and not any(f.startswith(("SQLite", "graph not", "memory ")) for f in report.findings):
        report.healthy = True
    return report
