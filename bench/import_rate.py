"""Import rate: ``import_archive`` of a large archive, with its vectors and without.

    uv run python bench/import_rate.py [--records N] [--embed-records N]
    uv run python bench/import_rate.py --quick   # 5,000 and 1,000 records (CI's check that it runs)

Builds two synthetic archives in a scratch folder (the texts of ``bench/foundation.py``'s
``make_memories``, with entities, some sessions and one ``add`` version each, as an export
writes them, with an empty ``relations_read.jsonl``: the generated texts carry no relations):

1. ``--records`` memories (default 100,000) **with vectors**: random unit vectors, and the
   manifest names this home's embedding model, so the import reuses them (the bound is
   the writing: validation, rows, FTS, vectors, versions, outbox, context windows);
2. ``--embed-records`` memories (default 10,000) **without vectors**: the import embeds
   them (the bound is the embedding model).

Each import runs in a child process (``--child``) against a fresh ``MEMCUBE_HOME``, so the
child's peak resident memory is the import's own (read with ``wait4``). The child times
each stage it reports through its progress callback: checking, importing (chunks
committed), embedding (stragglers) and, with ``--graph``, graph (the queued graph changes
applied; without it they stay queued, as ``import_archive(graph=False)`` leaves them).
``import_per_s`` counts the records over the time before the graph stage (both passes
over the archive, the vectors, every chunk), the graph apart (``graph_s``). Then the
cube is checked: rows, FTS rows, vectors, versions, outbox entries.

The last line is ``RESULT records=... import_per_s=... rss_mb=... embed_records=...
embed_import_per_s=... embed_rss_mb=... [graph_s=...]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def build_archive(path: Path, n: int, *, model_id: str | None, dim: int, seed: int = 19) -> None:
    """A ``memcube export``-shaped archive of ``n`` memories; with vectors when ``model_id`` is given."""
    from foundation import make_memories

    from memory.entities import extract_entities_many
    from memory.ids import new_memory_id

    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    memories = make_memories(n, seed=seed)
    names = extract_entities_many([item["text"] for item in memories])  # one batched parse (memory.language)
    with_vectors = model_id is not None
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        ids: list[str] = []
        with archive.open("memories.jsonl", "w") as sink:
            session, left = None, 0
            for number, item in enumerate(memories):
                memory_id = new_memory_id()
                ids.append(memory_id)
                at = f"2026-{1 + number % 12:02d}-{1 + number % 28:02d}T{number % 24:02d}:00:00Z"
                if left == 0:  # about a third of the memories are turns of a conversation of 10
                    session, left = (f"chat-{number}" if pick.random() < 0.33 else None), 10
                left -= 1
                record: dict[str, Any] = {
                    **item,
                    "id": memory_id,
                    "entities": names[number],
                    "session_id": session,
                    "client": "bench",
                    "created_at": at,
                    "updated_at": at,
                    "versions": [
                        {
                            "version": 1,
                            "op": "add",
                            "at": at,
                            "client": "bench",
                            "changes": {"text": {"old": None, "new": item["text"]}},
                        }
                    ],
                }
                sink.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        if with_vectors:
            with archive.open("vectors.jsonl", "w") as sink:
                for start in range(0, n, 10_000):
                    block = rng.standard_normal((min(10_000, n - start), dim)).astype("<f4")
                    block /= np.linalg.norm(block, axis=1, keepdims=True)
                    for memory_id, vector in zip(ids[start : start + len(block)], block, strict=True):
                        encoded = base64.b64encode(vector.tobytes()).decode("ascii")
                        sink.write(json.dumps({"id": memory_id, "vector": encoded}).encode() + b"\n")
        # An export carries the relations read from its texts (memory.io.archive_relations); these
        # generated texts have none to carry. An archive without the member has them read on import.
        archive.writestr("relations_read.jsonl", "")
        manifest = {
            "format": "memcube-archive",
            "format_version": 1,
            "cube": "imported",
            "embedding": {"model_id": model_id, "dim": dim, "vectors_included": with_vectors},
            "counts": {"memories": n, "entities": 0, "relations": 0, "vectors": n if with_vectors else 0},
        }
        archive.writestr("manifest.json", json.dumps(manifest))


def child(archive: Path, home: Path, *, graph: bool) -> int:
    """Import ``archive`` into a fresh home; print the stage times and the report as one JSON line."""
    from dataclasses import asdict

    from memory import MemoryHome
    from memory.io.archive import import_archive

    stages: dict[str, list[float]] = {}

    def progress(stage: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        span = stages.setdefault(stage, [now, now])
        span[1] = now

    memory_home = MemoryHome(home)
    memory_home.embedder.load()  # the model's load is start-up, not import
    started = time.perf_counter()
    report = import_archive(memory_home, archive, progress=progress, graph=graph)
    ended = time.perf_counter()
    memory_home.close()
    times = {stage: span[1] - span[0] for stage, span in stages.items()}
    # Everything before the graph stage: both passes over the archive, the vectors, the chunks.
    records_s = (stages["graph"][0] if "graph" in stages else ended) - started
    result = {"total_s": ended - started, "records_s": records_s, "stages": times, "report": asdict(report)}
    print(json.dumps(result), flush=True)
    return 0


def run_import(archive: Path, home: Path, *, graph: bool) -> tuple[dict[str, Any], float]:
    """The child's JSON line and its peak resident memory in MB."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(archive), str(home), *(["--graph"] if graph else [])],
        cwd=ROOT,
        env={**os.environ, "MEMCUBE_HOME": str(home)},
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"the import child failed with exit code {proc.returncode}")
    return json.loads(output.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def check_cube(home: Path, n: int, *, graph: bool) -> str:
    """Rows, FTS rows, vectors, versions and outbox entries of the imported cube, read directly."""
    from memory.store.connection import connect

    conn = connect(home / "cubes" / "imported" / "memory.db")
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    counts = {
        "rows": one("SELECT count(*) FROM memories"),
        "fts": one("SELECT count(*) FROM memory_fts"),
        "vectors": one("SELECT count(*) FROM memory_vec"),
        "versions": one("SELECT count(*) FROM memory_versions"),
        "stale": one("SELECT count(*) FROM memories WHERE embedding_model IS NULL"),
        "outbox": one("SELECT count(*) FROM graph_outbox"),
    }
    conn.close()
    ok = (
        counts["rows"] == counts["fts"] == counts["vectors"] == n
        and counts["versions"] == 2 * n
        and counts["stale"] == 0
        and counts["outbox"] == (0 if graph else n)
    )
    return f"{counts} {'ok' if ok else 'MISMATCH'}"


def measure(label: str, n: int, *, with_vectors: bool, graph: bool, scratch: Path) -> tuple[float, float, float | None]:
    from memory.retrieval.embedder import Embedder

    embedder = Embedder()
    archive = scratch / f"{label}.memcube"
    started = time.perf_counter()
    build_archive(archive, n, model_id=embedder.model_id if with_vectors else None, dim=embedder.dim)
    log(
        f"{label}: built an archive of {n:,} memories in {time.perf_counter() - started:.1f} s ({archive.stat().st_size / 1e6:.0f} MB)"
    )
    home = scratch / f"{label}-home"
    result, rss_mb = run_import(archive, home, graph=graph)
    stages, report = result["stages"], result["report"]
    rate = n / result["records_s"]
    print(f"{label}: {n:,} records, with vectors: {with_vectors}")
    print(
        "  stages (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
        + f"; records {result['records_s']:.1f}, total {result['total_s']:.1f}"
    )
    print(
        f"  imported {report['imported']:,}, vectors reused {report['vectors_reused']:,}, embedded {report['reembedded']:,}; "
        f"{rate:,.0f} records/s without the graph; peak RSS {rss_mb:.0f} MB"
    )
    found = check_cube(home, n, graph=graph)
    print(f"  cube: {found}")
    if found.endswith("MISMATCH"):
        raise SystemExit(f"{label}: the imported cube does not hold what the archive does")
    return rate, rss_mb, stages.get("graph", 0.0) if graph else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="memories in the archive with vectors")
    parser.add_argument("--embed-records", type=int, default=10_000, help="memories in the archive without vectors")
    parser.add_argument("--quick", action="store_true", help="5,000 and 1,000 records")
    parser.add_argument(
        "--graph", action="store_true", help="apply the graph changes in the import with vectors (graph_s); else they stay queued"
    )
    parser.add_argument("--child", nargs=2, metavar=("ARCHIVE", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(Path(args.child[0]), Path(args.child[1]), graph=args.graph)
    if args.quick:
        args.records, args.embed_records = 5_000, 1_000
    with tempfile.TemporaryDirectory(prefix="memcube-import-bench-") as folder:
        scratch = Path(folder)
        rate, rss, graph_s = measure("with-vectors", args.records, with_vectors=True, graph=args.graph, scratch=scratch)
        embed_rate, embed_rss, _ = measure(
            "without-vectors", args.embed_records, with_vectors=False, graph=False, scratch=scratch
        )
    print(
        f"RESULT records={args.records} import_per_s={rate:.0f} rss_mb={rss:.0f} embed_records={args.embed_records} "
        f"embed_import_per_s={embed_rate:.0f} embed_rss_mb={embed_rss:.0f}"
        + (f" graph_s={graph_s:.1f}" if graph_s is not None else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
