"""Hybrid retrieval: keyword, context, vector, entity and time signals, fused by score.

Each signal scores candidates on its own terms and is brought to a common scale:

- ``keyword``: BM25 over the memory's own text (FTS5), divided by the best score;
- ``context``: BM25 over the memory's context window (its text with its thread
  neighbours, see ``memory.context``), divided by the best score: a chat turn is found
  through what was said around it;
- ``vector``: cosine with the query, as a z-score over the cube's searchable memories,
  so a memory counts for how far it stands above the rest, not for MiniLM's raw scale;
- ``entity``: a bonus for memories linked to an entity the query names, larger for rarer
  entities (an entity in half the cube says little), and for memories *said by* it (a
  leading ``"Name: "``, the way chat transcripts are stored);
- ``time``: a bonus for memories whose ``occurred_at`` lies in a period the query names
  ("last week", "in May 2023"; see ``memory.query_time``).

The fused score is the weighted sum. Measured on long conversations (bench/locomo.py),
summing normalised scores beat reciprocal rank fusion, which gives a weak signal's
ranking as much say as a strong one's.
"""

from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import numpy as np

from . import context
from .entities import normalize, query_keys
from .models import ContextTurn, SearchHit, SearchQuery, SignalScore
from .query_time import TimeRange, parse_time_range
from .store import CubeStore
from .timeutil import stored_from_input
from .vectors import VectorMirror

# Weights of the signals in the fused score (see the module docstring for their scales).
WEIGHTS = {"context": 1.0, "keyword": 0.5, "vector": 0.2, "entity": 0.3, "speaker": 0.3, "time": 0.3}
MIN_POOL = 100
_SPEAKER = re.compile(r"^\s*([^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){0,2})\s*:\s")
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
    signals: dict[str, tuple[int, float]] = field(default_factory=dict)  # signal -> (rank, raw score)
    fused: float = 0.0

    def add(self, signal: str, rank: int, score: float, contribution: float) -> None:
        self.signals[signal] = (rank, score)
        self.fused += contribution

    def explained(self) -> dict[str, SignalScore]:
        return {name: SignalScore(rank=rank, score=round(float(score), 6)) for name, (rank, score) in self.signals.items()}


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
    # A time window matches when a memory happened in it, or (tasks) falls due in it.
    if q.since is not None:
        clauses.append("coalesce(m.occurred_at, m.due_at) >= ?")
        params.append(stored_from_input(q.since, field="since"))
    if q.until is not None:
        clauses.append("coalesce(m.occurred_at, m.due_at) <= ?")
        params.append(stored_from_input(q.until, field="until"))
    return clauses, params


def _status_sql(q: SearchQuery) -> str:
    return "m.status IN ('active', 'archived')" if q.include_archived else "m.status = 'active'"


def keyword_candidates(conn: sqlite3.Connection, q: SearchQuery, k: int, *, table: str = "memory_fts") -> list[tuple[int, float]]:
    """BM25 matches of the query's content words in ``memory_fts`` (own text) or ``memory_context_fts`` (windows)."""
    match = keyword_query(q.query)
    if match is None:
        return []
    clauses, params = _filter_sql(q)
    where = " AND ".join([_status_sql(q), *clauses])
    rank = "bm25(memory_fts, 1.0, 0.5, 0.5)" if table == "memory_fts" else f"bm25({table})"
    rows = conn.execute(
        f"SELECT f.rowid, {rank} AS score FROM {table} f "
        f"JOIN memories m ON m.row_id = f.rowid WHERE {table} MATCH ? AND {where} ORDER BY score LIMIT ?",
        [match, *params, k],
    ).fetchall()
    # FTS5's bm25() is "lower is better" (negative); flip it so every signal reads higher-is-better.
    return [(rid, -score) for rid, score in rows]


def entity_candidates(conn: sqlite3.Connection, q: SearchQuery, k: int) -> list[tuple[int, float]]:
    """Memories linked to an entity named in the query, with the specificity of the rarest one they mention.

    Specificity is ``log(N / df) / log(N)``: 1 for an entity one memory mentions, near 0
    for one that every memory mentions (the user's own name in a personal cube).
    """
    keys = query_keys(q.query)
    if not keys:
        return []
    placeholders = ",".join("?" * len(keys))
    counts = dict(conn.execute(
        f"SELECT e.norm, count(*) FROM memory_entities e JOIN memories m ON m.row_id = e.memory_rowid "
        f"WHERE e.norm IN ({placeholders}) AND {_status_sql(q)} GROUP BY e.norm",
        list(keys),
    ).fetchall())
    if not counts:
        return []
    total = max(2, conn.execute(f"SELECT count(*) FROM memories m WHERE {_status_sql(q)}").fetchone()[0])
    weight = {key: math.log(total / df) / math.log(total) for key, df in counts.items() if df < total}
    if not weight:
        return []
    clauses, params = _filter_sql(q)
    where = " AND ".join([_status_sql(q), *clauses])
    found = list(weight)
    rows = conn.execute(
        f"SELECT e.memory_rowid, e.norm FROM memory_entities e JOIN memories m ON m.row_id = e.memory_rowid "
        f"WHERE e.norm IN ({','.join('?' * len(found))}) AND {where}",
        [*found, *params],
    ).fetchall()
    best: dict[int, float] = {}
    for row_id, norm in rows:
        best[row_id] = max(best.get(row_id, 0.0), weight[norm])
    return sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]


@lru_cache(maxsize=65_536)
def speaker_of(text: str) -> str | None:
    """Who said a memory stored as a transcript line (``"Alice: ..."``), normalised; None otherwise."""
    match = _SPEAKER.match(text)
    return normalize(match.group(1)) if match and match.group(1)[0].isupper() else None


def embedding_text(text: str) -> str:
    """What a memory's vector is made from: its text less a leading speaker (``"Alice: "``).

    Who said something is matched by the entity signal; leaving the name out of the
    vector keeps every line one person said from looking alike to a query that names them.
    """
    match = _SPEAKER.match(text)
    if match and match.group(1)[0].isupper() and len(text) > match.end():
        return text[match.end():]
    return text


def vector_query_text(conn: sqlite3.Connection, query: str) -> str:
    """The query less the names of entities this cube knows: the vector looks for *what*, the entity signal for *who*."""
    keys = [k for k in query_keys(query) if not k.startswith(("@", "#"))]
    if not keys:
        return query
    placeholders = ",".join("?" * len(keys))
    known = [r[0] for r in conn.execute(f"SELECT DISTINCT norm FROM memory_entities WHERE norm IN ({placeholders})", keys)]
    stripped = query
    for name in sorted(known, key=len, reverse=True):
        words = r"\s+".join(re.escape(w) for w in name.split())
        stripped = re.sub(rf"(?<!\w){words}(?:['’]s)?(?!\w)", " ", stripped, flags=re.IGNORECASE)
    stripped = re.sub(r"\s+", " ", stripped).strip()
    return stripped if _TOKEN.search(stripped) and stripped != query.strip() else query


def time_candidates(conn: sqlite3.Connection, q: SearchQuery, period: TimeRange, k: int) -> list[int]:
    clauses, params = _filter_sql(q)
    where = " AND ".join([_status_sql(q), "m.occurred_at >= ?", "m.occurred_at < ?", *clauses])
    rows = conn.execute(
        f"SELECT m.row_id FROM memories m WHERE {where} ORDER BY m.occurred_at DESC LIMIT ?",
        [period.start_stored, period.end_stored, *params, k],
    ).fetchall()
    return [r[0] for r in rows]


def _scaled(ranked: list[tuple[int, float]]) -> list[tuple[int, float, float]]:
    """(row_id, raw, raw / best) for a higher-is-better list."""
    if not ranked:
        return []
    top = max(score for _, score in ranked)
    return [(row_id, score, score / top if top > 0 else 0.0) for row_id, score in ranked]


def hybrid_search(
    store: CubeStore, mirror: VectorMirror, q: SearchQuery, query_vector: np.ndarray | None,
    *, now: datetime | None = None,
) -> list[SearchHit]:
    pool = max(MIN_POOL, q.limit * 5)
    candidates: dict[int, Candidate] = {}

    def candidate(row_id: int) -> Candidate:
        return candidates.setdefault(row_id, Candidate(row_id))

    vector_z: dict[int, float] = {}
    vector_raw: dict[int, float] = {}
    vector_rank: dict[int, int] = {}
    period = parse_time_range(q.query, now) if "time" in q.signals else None
    with store.read() as conn:
        if "keyword" in q.signals:
            for rank, (row_id, raw, scaled) in enumerate(_scaled(keyword_candidates(conn, q, pool)), start=1):
                candidate(row_id).add("keyword", rank, raw, WEIGHTS["keyword"] * scaled)
        if "context" in q.signals:
            found = keyword_candidates(conn, q, pool, table="memory_context_fts")
            for rank, (row_id, raw, scaled) in enumerate(_scaled(found), start=1):
                candidate(row_id).add("context", rank, raw, WEIGHTS["context"] * scaled)
        if "vector" in q.signals and query_vector is not None:
            mirror.sync(conn)
            row_ids, scores = mirror.all_scores(query_vector, include_archived=q.include_archived, allowed=filtered_row_ids(conn, q))
            if len(scores):
                mean, std = float(scores.mean()), float(scores.std())
                k = min(pool, len(scores))
                top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
                top = top[np.argsort(-scores[top], kind="stable")]
                for rank, i in enumerate(top.tolist(), start=1):
                    vector_rank[int(row_ids[i])] = rank
                    candidate(int(row_ids[i]))
                z = (scores - mean) / (std if std > 1e-9 else 1.0)
                vector_z = dict(zip(row_ids.tolist(), z.tolist(), strict=True))
                vector_raw = dict(zip(row_ids.tolist(), scores.tolist(), strict=True))
        if "entity" in q.signals:
            for rank, (row_id, specificity) in enumerate(entity_candidates(conn, q, pool), start=1):
                candidate(row_id).add("entity", rank, specificity, WEIGHTS["entity"] * specificity)
        if period is not None:
            for row_id in time_candidates(conn, q, period, pool * 4):
                candidate(row_id)
        texts = _texts(conn, list(candidates)) if ("entity" in q.signals or period is not None) else {}

    if vector_z:
        for row_id, c in candidates.items():
            if row_id in vector_z:
                c.add("vector", vector_rank.get(row_id, len(vector_z)), vector_raw[row_id], WEIGHTS["vector"] * vector_z[row_id])
    if "entity" in q.signals:
        keys = query_keys(q.query)
        for row_id, c in candidates.items():
            speaker = speaker_of(texts.get(row_id, ("", None))[0])
            if speaker is not None and speaker in keys:
                c.add("speaker", 1, 1.0, WEIGHTS["speaker"])
    if period is not None:
        for row_id, c in candidates.items():
            if period.contains(texts.get(row_id, ("", None))[1]):
                c.add("time", 1, 1.0, WEIGHTS["time"])

    ranked = sorted(candidates.values(), key=lambda c: (-c.fused, c.row_id))[: q.limit]
    memories = store.get_by_row_ids([c.row_id for c in ranked])
    hits = []
    for candidate_ in ranked:
        memory = memories.get(candidate_.row_id)
        if memory is None:  # purged between the ranking and the read
            continue
        hits.append(
            SearchHit(
                id=memory.id, text=memory.text, score=round(candidate_.fused, 6), type=memory.type, tags=memory.tags,
                occurred_at=memory.occurred_at, created_at=memory.created_at, status=memory.status,
                signals=candidate_.explained(),
            )
        )
    return hits


def _texts(conn: sqlite3.Connection, row_ids: list[int]) -> dict[int, tuple[str, str | None]]:
    out: dict[int, tuple[str, str | None]] = {}
    for start in range(0, len(row_ids), 500):
        chunk = row_ids[start : start + 500]
        placeholders = ",".join("?" * len(chunk))
        for row_id, text, occurred_at in conn.execute(
            f"SELECT row_id, text, occurred_at FROM memories WHERE row_id IN ({placeholders})", chunk
        ):
            out[row_id] = (text, occurred_at)
    return out


def context_turns(store: CubeStore, hits: list[SearchHit], turns: int, *, include_archived: bool = False) -> list[ContextTurn]:
    """The thread neighbours of each hit (``turns`` on each side), without the hits themselves or repeats."""
    if turns <= 0 or not hits:
        return []
    statuses = ("active", "archived") if include_archived else ("active",)
    seen = {h.id for h in hits}
    out: list[ContextTurn] = []
    with store.read() as conn:
        rows = dict(conn.execute(
            f"SELECT id, row_id FROM memories WHERE id IN ({','.join('?' * len(hits))})", [h.id for h in hits]
        ).fetchall())
        wanted: list[tuple[str, int, int]] = []
        for hit in hits:
            row_id = rows.get(hit.id)
            if row_id is None:
                continue
            for neighbour, offset in context.thread_neighbours(conn, row_id, turns, turns, statuses):
                wanted.append((hit.id, neighbour, offset))
    memories = store.get_by_row_ids(list({r for _, r, _ in wanted}))
    for hit_id, row_id, offset in wanted:
        memory = memories.get(row_id)
        if memory is None or memory.id in seen:
            continue
        seen.add(memory.id)
        out.append(ContextTurn(
            id=memory.id, text=memory.text, occurred_at=memory.occurred_at, session_id=memory.session_id,
            context_of=hit_id, offset=offset,
        ))
    return out
