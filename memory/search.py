"""Hybrid retrieval: vector KNN, FTS5 BM25 and entity links, fused by reciprocal rank.

Each signal ranks candidates on its own terms; reciprocal rank fusion (RRF) adds
``1 / (k + rank)`` over the signals that found a memory, so a memory found by several
signals rises, and no signal's raw scale (cosine vs. BM25) has to be calibrated.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field

import numpy as np

from .entities import query_keys
from .models import SearchHit, SearchQuery, SignalScore
from .store import CubeStore
from .timeutil import stored_from_input
from .vectors import VectorMirror

RRF_K = 60
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
# Words that carry no topic: dropped from the keyword query so BM25 ranks on content words.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves did does tell know
    ever s t don""".split()
)


@dataclass
class Candidate:
    row_id: int
    signals: dict[str, SignalScore] = field(default_factory=dict)
    fused: float = 0.0


def keyword_query(text: str) -> str | None:
    """An FTS5 query that ORs the content words of ``text``, each quoted (so no FTS syntax gets through)."""
    words = [w.lower() for w in _TOKEN.findall(text)]
    content = [w for w in words if w not in STOPWORDS] or words
    unique = list(dict.fromkeys(content))[:32]
    if not unique:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in unique)


def filtered_row_ids(conn: sqlite3.Connection, q: SearchQuery) -> np.ndarray | None:
    """Row ids passing the query's filters, or None when there are no filters."""
    clauses, params = _filter_sql(q)
    if not clauses:
        return None
    rows = conn.execute(f"SELECT row_id FROM memories m WHERE {' AND '.join(clauses)}", params).fetchall()
    return np.array(sorted(r[0] for r in rows), dtype=np.int64)


def _filter_sql(q: SearchQuery) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if q.types:
        clauses.append(f"m.type IN ({','.join('?' * len(q.types))})")
        params.extend(t.strip().lower() for t in q.types)
    if q.tags:
        clauses.append(f"EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value IN ({','.join('?' * len(q.tags))}))")
        params.extend(q.tags)
    if q.since is not None:
        clauses.append("m.occurred_at >= ?")
        params.append(stored_from_input(q.since, field="since"))
    if q.until is not None:
        clauses.append("m.occurred_at <= ?")
        params.append(stored_from_input(q.until, field="until"))
    return clauses, params


def _status_sql(q: SearchQuery) -> str:
    return "m.status IN ('active', 'archived')" if q.include_archived else "m.status = 'active'"


def keyword_candidates(conn: sqlite3.Connection, q: SearchQuery, k: int) -> list[tuple[int, float]]:
    match = keyword_query(q.query)
    if match is None:
        return []
    clauses, params = _filter_sql(q)
    where = " AND ".join([_status_sql(q), *clauses])
    rows = conn.execute(
        "SELECT f.rowid, bm25(memory_fts, 1.0, 0.5, 0.5) AS score FROM memory_fts f "
        f"JOIN memories m ON m.row_id = f.rowid WHERE memory_fts MATCH ? AND {where} ORDER BY score LIMIT ?",
        [match, *params, k],
    ).fetchall()
    # FTS5's bm25() is "lower is better" (negative); flip it so every signal reads higher-is-better.
    return [(rid, -score) for rid, score in rows]


def entity_candidates(conn: sqlite3.Connection, q: SearchQuery, k: int) -> list[tuple[int, int]]:
    """Memories linked to an entity named in the query, with how many such entities they mention."""
    keys = query_keys(q.query)
    if not keys:
        return []
    clauses, params = _filter_sql(q)
    where = " AND ".join([_status_sql(q), *clauses])
    placeholders = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT e.memory_rowid, count(*) AS matched FROM memory_entities e JOIN memories m ON m.row_id = e.memory_rowid "
        f"WHERE e.norm IN ({placeholders}) AND {where} GROUP BY e.memory_rowid ORDER BY matched DESC, m.created_at DESC LIMIT ?",
        [*keys, *params, k * 4],
    ).fetchall()
    return rows


def hybrid_search(
    store: CubeStore, mirror: VectorMirror, q: SearchQuery, query_vector: np.ndarray | None
) -> list[SearchHit]:
    pool = max(50, q.limit * 5)
    candidates: dict[int, Candidate] = {}

    def add(signal: str, ranked: list[tuple[int, float]]) -> None:
        for rank, (row_id, score) in enumerate(ranked, start=1):
            candidate = candidates.setdefault(row_id, Candidate(row_id))
            candidate.signals[signal] = SignalScore(rank=rank, score=round(float(score), 6))
            candidate.fused += 1.0 / (RRF_K + rank)

    with store.read() as conn:
        if "vector" in q.signals and query_vector is not None:
            mirror.sync(conn)
            allowed = filtered_row_ids(conn, q)
            add("vector", mirror.search(query_vector, pool, include_archived=q.include_archived, allowed=allowed))
        if "keyword" in q.signals:
            add("keyword", keyword_candidates(conn, q, pool))
        if "entity" in q.signals:
            linked = entity_candidates(conn, q, pool)
            if linked:
                # Among memories linked to the query's entities, prefer those closer in meaning.
                similarity = mirror.similarity(query_vector, [r for r, _ in linked]) if query_vector is not None else {}
                linked.sort(key=lambda item: (-item[1], -similarity.get(item[0], 0.0)))
                add("entity", [(row_id, float(matched)) for row_id, matched in linked[:pool]])

    ranked = sorted(candidates.values(), key=lambda c: (-c.fused, c.row_id))[: q.limit]
    memories = store.get_by_row_ids([c.row_id for c in ranked])
    hits = []
    for candidate in ranked:
        memory = memories.get(candidate.row_id)
        if memory is None:  # purged between the ranking and the read
            continue
        hits.append(
            SearchHit(
                id=memory.id, text=memory.text, score=round(candidate.fused, 6), type=memory.type, tags=memory.tags,
                occurred_at=memory.occurred_at, created_at=memory.created_at, status=memory.status,
                signals=candidate.signals,
            )
        )
    return hits
