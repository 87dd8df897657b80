"""The PostgreSQL engine at scale: vector search latency and HNSW recall@10 against the exact scan.

    uv run python bench/postgres.py [--memories N] [--queries Q] [--url URL]
    uv run python bench/postgres.py --quick   # CI's check that it runs: 3,000 memories, 30 queries

What it measures (issue 28, acceptance 4): one cube of N memories in a PostgreSQL with
pgvector (``--url``, or an embedded PostgreSQL 18 started here, as the tests do), loaded with
COPY and indexed with HNSW (m=16, ef_construction=64, the schema's), then

1. Q queries through ``PostgresVectors.nearest`` (the vector signal's call): latency p50/p95
   per ``ef_search``, and recall@10 against the exact top 10 (numpy over the same vectors);
2. Q searches through the whole ranking on the store (``hybrid_search`` over
   ``PostgresSearchSource``: BM25 over the ``tsvector``, the entity tables, the HNSW index,
   the priors), the work of ``memory_search`` less the MCP round trip and the query's
   embedding (its vector is given): ``search_p50_ms``, ``search_p95_ms``. Not yet through the
   MCP tool itself: a server does not serve a cube from the store yet.

The texts are bench/foundation.py's generated memories (people, places, foods, projects:
a small vocabulary, so common words match many memories, the keyword stage's hard case).

The vectors are generated, not embedded (embedding a million texts takes hours on two
cores): unit vectors of 384 dimensions in clusters (a cluster's memories have cosines around
0.6 with each other, as related memories do with the default model), queries near a stored
memory. Uniformly random vectors would be the hardest case for HNSW and unlike real text.

The last line is ``RESULT memories=... load_rows_per_s=... index_s=... ef_search=... p50_ms=... p95_ms=... recall10=...
search_p50_ms=... search_p95_ms=... tool_p50_ms=... tool_p95_ms=... writers=... adds_per_s=... sqlite_memories=... sqlite_adds_per_s=...``
for the engine's own ``ef_search`` (``memory.store.postgres.vectors.ef_for``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))
sys.path.insert(2, str(ROOT / "bench"))

from memory.store.postgres import EMBEDDING_DIM, migrate
from memory.store.postgres.vectors import PostgresVectors, ef_for

K = 10
SPREAD = 0.8  # noise around a cluster's centre: two memories of one cluster have cosine ~1/(1+SPREAD^2)
QUERY_NOISE = 0.5
CHUNK = 20_000  # rows per COPY block


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, rng: np.random.Generator) -> np.ndarray:
    clusters = max(20, n // 200)
    centres = unit(rng.standard_normal((clusters, EMBEDDING_DIM)))
    out = np.empty((n, EMBEDDING_DIM), dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        which = rng.integers(0, clusters, stop - start)
        noise = rng.standard_normal((stop - start, EMBEDDING_DIM)) / np.sqrt(EMBEDDING_DIM)
        out[start:stop] = unit(centres[which] + SPREAD * noise)
    return out


@contextmanager
def database(url: str | None) -> Iterator[str]:
    from postgres_support import fresh_database, postgres_server

    if url:
        with fresh_database(url) as db:
            yield db
        return
    with postgres_server() as server, fresh_database(server) as db:
        yield db


def load(conn: psycopg.Connection[Any], cube: int, vectors: np.ndarray, texts: list[str], model_id: str) -> tuple[float, float]:
    """COPY the memories in without the HNSW index, then build it; returns (rows/s, index seconds).

    The vectors are recorded as ``model_id``'s, so a server opening the cube does not re-embed them."""
    conn.execute("DROP INDEX memories_embedding")
    conn.execute(
        "INSERT INTO cube_meta (cube, key, value) VALUES (%s, 'embedding_model', %s), (%s, 'embedding_dim', %s)",
        (cube, model_id, cube, str(EMBEDDING_DIM)),
    )
    started = time.perf_counter()
    now = "2026-12-07T12:00:00Z"
    with conn.cursor() as cursor:
        with cursor.copy(
            "COPY memories (row_id, cube, id, text, type, created_at, updated_at, content_hash, seq, embedding, embedding_model) "
            "FROM STDIN"
        ) as copy:
            for start in range(0, len(vectors), CHUNK):
                block = io.StringIO()
                np.savetxt(block, vectors[start : start + CHUNK], fmt="%.7g", delimiter=",")
                lines = block.getvalue().splitlines()
                copy.write(
                    "".join(
                        f"{start + i + 1}\t{cube}\tm{start + i}\t{texts[start + i]}\tfact\t{now}\t{now}\th{start + i}\t1\t[{line}]\t{model_id}\n"
                        for i, line in enumerate(lines)
                    )
                )
                log(f"  copied {min(start + CHUNK, len(vectors)):,} / {len(vectors):,}")
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '2GB'")
    conn.execute(
        "CREATE INDEX memories_embedding ON memories USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
    conn.execute("ANALYZE memories")
    return len(vectors) / loaded, time.perf_counter() - started


def whole_search(url: str, cube: int, questions: list[str], vectors: np.ndarray) -> tuple[float, float]:
    """p50 and p95 ms of the whole ranking on the store, each question with a query vector given."""
    from memory.models import SearchQuery
    from memory.retrieval.search import hybrid_search
    from memory.store.postgres.search_source import PostgresSearchSource, PostgresVectorScores

    source, scores = PostgresSearchSource(url, cube), PostgresVectorScores(url, cube)
    try:
        times = []
        for number, (question, vector) in enumerate(zip(questions, vectors, strict=True)):
            started = time.perf_counter()
            hybrid_search(source, scores, SearchQuery(query=question, limit=10), lambda _text, v=vector: v)
            if number:  # the first pays for the spread sample and the word counts
                times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times), pct(times, 0.95)
    finally:
        source.close()
        scores.close()


def _new_memory(text: str, vector: np.ndarray) -> Any:
    from memory.store.writer import NewMemory

    return NewMemory(
        text=text,
        type="fact",
        tags=[],
        entities=[],
        relations=[],
        occurred_at=None,
        metadata={},
        importance=0.5,
        confidence=1.0,
        vector=vector,
    )


def _write_adds(job: tuple[str, str, int, int]) -> None:
    """One writer process: ``count`` adds of one memory each to the cube at ``where`` (a URL or a file)."""
    engine, where, writer, count = job
    rng = np.random.default_rng(1000 + writer)
    vectors = unit(rng.standard_normal((count, EMBEDDING_DIM)))
    if engine == "postgres":
        from memory.store.postgres.cube_store import PostgresCubeStore

        store: Any = PostgresCubeStore(where, "bench", follower=f"bench-{writer}")
    else:
        from memory.store.cube_store import CubeStore

        store = CubeStore("bench", Path(where))
    try:
        for i in range(count):
            store.add(
                [_new_memory(f"writer {writer} says note {i} about the offsite", vectors[i])],
                client=f"w{writer}",
                model_id="bench",
            )
    finally:
        store.close()


def concurrent_adds(engine: str, where: str, writers: int, adds: int) -> float:
    """Adds per second, all writers together, each a process of its own started before the clock."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        pool.map(_new_memory_warm, range(writers))  # imports done in every process before timing
        started = time.perf_counter()
        pool.map(_write_adds, [(engine, where, w, adds) for w in range(writers)])
        return writers * adds / (time.perf_counter() - started)


def _new_memory_warm(_: int) -> None:
    import memory.store.cube_store
    import memory.store.postgres.cube_store  # noqa: F401


def sqlite_cube(folder: Path, vectors: np.ndarray, texts: list[str]) -> Path:
    """A SQLite cube of these memories (one transaction per 1,000), for the side-by-side writers."""
    from memory.store.cube_store import CubeStore

    path = folder / "memory.db"
    store = CubeStore("bench", path)
    try:
        store.ensure_vector_table("bench", EMBEDDING_DIM)
        for start in range(0, len(vectors), 1000):
            store.add(
                [_new_memory(f"{texts[i]} [{i}]", vectors[i]) for i in range(start, min(len(vectors), start + 1000))],
                client="bench",
                model_id="bench",
            )
            if start % 20_000 == 0:
                log(f"  SQLite cube: {start + 1000:,} / {len(vectors):,}")
    finally:
        store.close()
    return path


def tool_search(url: str, questions: list[str]) -> tuple[float, float]:
    """p50 and p95 ms of ``memory_search`` calls through an in-process MCP client, on a server serving the store."""
    import anyio
    from mcp import Client

    from memory import MemoryHome
    from server.app import build_server

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.toml").write_text(f"[store]\nurl = {url!r}\n", encoding="utf-8")
        home = MemoryHome(folder)

        async def calls() -> list[float]:
            async with Client(build_server(home, warm_up=False)) as client:
                times = []
                for number, question in enumerate(questions):
                    started = time.perf_counter()
                    result = await client.call_tool("memory_search", {"query": question, "cube": "bench"})
                    assert not result.is_error, result.content
                    if number:  # the first loads the model and counts the words
                        times.append((time.perf_counter() - started) * 1000)
                return times

        try:
            times = anyio.run(calls)
        finally:
            home.close()
    return statistics.median(times), pct(times, 0.95)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--url", help="a PostgreSQL with pgvector whose role may create databases (default: an embedded one)")
    parser.add_argument("--writers", type=int, default=4, help="servers adding at once")
    parser.add_argument("--adds", type=int, default=200, help="memories each writer adds")
    parser.add_argument("--sqlite-memories", type=int, default=100_000, help="the SQLite cube the same writers add to")
    parser.add_argument("--quick", action="store_true", help="3,000 memories, 30 queries, 50 adds per writer, SQLite 3,000")
    args = parser.parse_args(argv)
    if args.quick:
        args.memories, args.queries, args.adds, args.sqlite_memories = 3_000, 30, 50, 3_000

    from foundation import make_memories, make_queries

    rng = np.random.default_rng(7)
    log(f"generating {args.memories:,} texts and clustered vectors")
    texts = [m["text"].replace("\t", " ").replace("\\", " ") for m in make_memories(args.memories)]
    questions = make_queries(args.queries)
    vectors = clustered(args.memories, rng)
    picks = rng.integers(0, args.memories, args.queries)
    queries = unit(vectors[picks] + QUERY_NOISE * rng.standard_normal((args.queries, EMBEDDING_DIM)) / np.sqrt(EMBEDDING_DIM))
    exact = [set((np.argsort(-(vectors @ q))[:K] + 1).tolist()) for q in queries]  # row ids are 1-based

    with database(args.url) as url, psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        row = conn.execute("INSERT INTO cubes (name) VALUES ('bench') RETURNING id").fetchone()
        assert row is not None
        cube = int(row[0])
        from memory.retrieval.embedder import Embedder

        rate, index_s = load(conn, cube, vectors, texts, Embedder().model_id)
        log(f"loaded at {rate:,.0f} rows/s; HNSW index built in {index_s:.1f} s")
        index = PostgresVectors(conn, cube)
        own = ef_for(K)
        results: dict[int, tuple[float, float, float]] = {}
        print(f"{args.memories:,} memories, {args.queries} queries, k={K}")
        print(f"{'ef_search':>10} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10}")
        for ef in sorted({40, 100, own, 400}):
            index.nearest(queries[0], K, ef_search=ef)  # warm the cache for this width
            times, recalls = [], []
            for q, truth in zip(queries, exact, strict=True):
                started = time.perf_counter()
                found = index.nearest(q, K, ef_search=ef)
                times.append((time.perf_counter() - started) * 1000)
                recalls.append(len({row_id for row_id, _ in found} & truth) / K)
            results[ef] = (statistics.median(times), pct(times, 0.95), statistics.mean(recalls))
            print(f"{ef:>10} {results[ef][0]:>8.2f} {results[ef][1]:>8.2f} {results[ef][2]:>10.3f}")
        search_p50, search_p95 = whole_search(url, cube, questions, queries)
        print(f"whole ranking on the store (hybrid_search, limit 10): p50 {search_p50:.1f} ms, p95 {search_p95:.1f} ms")
        tool_p50, tool_p95 = tool_search(url, questions)
        print(f"memory_search through MCP on a server serving the store: p50 {tool_p50:.1f} ms, p95 {tool_p95:.1f} ms")
        # Rows were loaded with their own ids: the identity column numbers on from the highest.
        conn.execute("SELECT setval(pg_get_serial_sequence('memories', 'row_id'), (SELECT max(row_id) FROM memories))")
        adds_per_s = concurrent_adds("postgres", url, args.writers, args.adds)
        print(f"{args.writers} servers adding at once to the store's cube of {args.memories:,}: {adds_per_s:.0f} adds/s")
    with tempfile.TemporaryDirectory() as folder:
        log(f"building a SQLite cube of {args.sqlite_memories:,} memories")
        sqlite_vectors = clustered(args.sqlite_memories, rng)
        sqlite_texts = [m["text"] for m in make_memories(args.sqlite_memories)]
        path = sqlite_cube(Path(folder), sqlite_vectors, sqlite_texts)
        sqlite_adds_per_s = concurrent_adds("sqlite", str(path), args.writers, args.adds)
        print(
            f"{args.writers} servers adding at once to a SQLite cube of {args.sqlite_memories:,}: {sqlite_adds_per_s:.0f} adds/s"
        )
    p50, p95, recall = results[own]
    print(
        f"RESULT memories={args.memories} load_rows_per_s={rate:.0f} index_s={index_s:.1f} ef_search={own} "
        f"p50_ms={p50:.2f} p95_ms={p95:.2f} recall10={recall:.3f} search_p50_ms={search_p50:.1f} search_p95_ms={search_p95:.1f} "
        f"tool_p50_ms={tool_p50:.1f} tool_p95_ms={tool_p95:.1f} writers={args.writers} adds_per_s={adds_per_s:.0f} sqlite_memories={args.sqlite_memories} "
        f"sqlite_adds_per_s={sqlite_adds_per_s:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
