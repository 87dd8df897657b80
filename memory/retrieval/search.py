"""Hybrid retrieval: keyword, context, vector and entity signals, fused by score.

Each signal scores candidates on its own terms and is brought to a common scale:

- ``keyword``: BM25 over the memory's own text (FTS5), divided by the best score;
- ``context``: BM25 over the memory's context window (its text with its thread
  neighbours, see ``memory.store.threads``), divided by the best score: a chat turn is found
  through what was said around it; a fact or preference, which stands alone, scores the
  better of its window and its own text;
- ``vector``: cosine with the query, as a z-score over the cube's searchable memories,
  so a memory counts for how far it stands above the rest, not for MiniLM's raw scale;
- ``exact``: a bonus for the memory whose text is exactly the query;
- ``entity``: a bonus for memories linked to an entity the query names, larger for rarer
  entities (an entity in half the cube says little), and for memories *said by* it (a
  leading ``"Name: "``, the way chat transcripts are stored); a name's first memories are
  found through it, and any memory another signal found gets its bonus too;

The vector looks for *what* the query asks and the entity signal for *who*: the query is
embedded without the names of entities the cube knows, and a memory without its leading
speaker. The fused score is the weighted sum. Measured on long conversations (bench/locomo.py),
summing normalised scores beat reciprocal rank fusion, which gives a weak signal's
ranking as much say as a strong one's. Priors then reorder the best few: a memory longer than
the embedding model's window has its match signals scaled down (``length``: a pasted,
keyword-stuffed note matches everything a little and its vector reads its first window only),
a memory that ends with a question (``asks``) gives way to statements, and when the query names several
people who speak in the cube, their memories take turns. Time words ("last week") are read before this, by
the query plan (``memory.retrieval.planning``), into an ``occurred_at`` filter.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from memory import fork_join as parallel
from memory.entities import normalize, query_keys
from memory.models import ContextTurn, SearchHit, SearchQuery, SignalScore
from memory.retrieval import kin
from memory.retrieval.aliases import AliasTable
from memory.retrieval.name_spellings import misspelt_names
from memory.retrieval.time_words import resolve as resolve_time
from memory.retrieval.word_forms import with_forms
from memory.stopwords import STOPWORDS
from memory.store.contract import FtsTable, QueryCosines, SearchReads, SearchSource, VectorScores
from memory.store.engines import AnyCubeStore

# Weights of the signals in the fused score (see the module docstring for their scales).
# Chosen on a grid over bench/locomo.py by directions that held across the grid, not by its
# single best point; the entity weight on `bench/locomo.py --all` (bench/RESULTS.md, "Signal
# weights" and "Retrieval by how memories arrive", where the figures are kept).
WEIGHTS = {"context": 1.0, "keyword": 0.3, "vector": 0.3, "entity": 3.0, "speaker": 0.6, "exact": 1.0}
MIN_POOL = 100
# The keyword stages first rank the best 2 * pool matches of the whole index and keep those
# passing the filters; when the filters keep under a third of the cube, fewer than the pool
# would be expected to pass, so they rank only the memories that pass (the same answer).
FEW_FILTERED = 3
_SPEAKER = re.compile(r"^\s*([^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){0,2})\s*:\s")
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


# A memory's text past about the embedding model's window (256 tokens) is long: one that long
# matches many queries a little (BM25 saturates, the vector reads its first window only, it
# names many entities), so its match signals count for less, by ``length_factor``.
LONG_TEXT = 1000  # characters


def length_factor(chars: int) -> float:
    """1 for a text up to ``LONG_TEXT`` characters, then ``sqrt(LONG_TEXT / chars)`` (a 30 KB note: 0.18)."""
    return 1.0 if chars <= LONG_TEXT else math.sqrt(LONG_TEXT / chars)


# The signals that say a memory matches the query's words, meaning or names: what a long text dilutes.
MATCH_SIGNALS = ("keyword", "context", "vector", "entity")


@dataclass
class ScoredRow:
    """One memory row found by a signal: each signal's rank and score, and the fused score they add up to."""

    row_id: int
    signals: dict[str, tuple[int, float]] = field(default_factory=dict)  # signal -> (rank, raw score)
    fused: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)  # signal -> its contribution to ``fused``

    def add(self, signal: str, rank: int, score: float, contribution: float) -> None:
        self.signals[signal] = (rank, score)
        self.fused += contribution
        self.parts[signal] = self.parts.get(signal, 0.0) + contribution

    def explained(self) -> dict[str, SignalScore]:
        return {name: SignalScore(rank=rank, score=round(float(score), 6)) for name, (rank, score) in self.signals.items()}


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry a topic (lower-cased, stop words left out), in order, once each."""
    return list(dict.fromkeys(w for w in (w.lower() for w in _TOKEN.findall(text)) if w not in STOPWORDS))


def keyword_terms(text: str, *, forms: bool = False) -> list[str] | None:
    """The words the keyword signals look for: the content words of ``text`` (any one may match).

    None for a query of stop words alone ("what is it"): matching them would find every
    memory about as well as any other, so the keyword signals stay out of it.
    ``forms``: each word with its irregular forms, which the stemmers do not fold
    ("try" and "tried", "send" and "sent"; ``memory.retrieval.word_forms``).
    Each engine turns them into its own full-text query, every word a literal.
    """
    unique = content_words(text)[:32]
    if not unique:
        return None
    return [w for w in with_forms(unique) if w in unique or w not in STOPWORDS] if forms else unique


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
        return text[match.end() :]
    return text


@dataclass
class EntityMatches:
    """The entity stage's answer: memories linked to entities the query names, best first, and
    the names behind them (to tell, later, which of the search's candidates those entities said
    or are linked to)."""

    ranked: list[tuple[int, float]]  # (row_id, specificity), best first
    canonical: dict[str, str]  # each linked entity key -> the name of its alias group
    specificity: dict[str, float] = field(default_factory=dict)  # each group's name -> its specificity

    def candidate_links(
        self, view: SearchReads, q: SearchQuery, row_ids: Sequence[int]
    ) -> tuple[dict[int, str], list[tuple[int, float]]]:
        """Of these memories, in one read of their links: which one of the named entities said (a
        ``"Name: ..."`` line; row id -> its group's name), and those linked to a named entity as
        ``(row_id, specificity)`` best first, at the specificity of the rarest such name.

        ``ranked`` holds only the first ``k`` memories of a common name (in row order, so the
        work stays bounded); a memory that other signals found gets its bonus here, whatever its age.
        """
        said: dict[int, str] = {}
        best: dict[int, float] = {}
        for row_id, norm, speaker in view.links(q, sorted(self.canonical), row_ids):
            name = self.canonical[norm]
            if speaker:
                said[row_id] = name
            best[row_id] = max(best.get(row_id, 0.0), self.specificity[name])
        return said, sorted(best.items(), key=lambda item: (-item[1], item[0]))


def entity_matches(view: SearchReads, q: SearchQuery, k: int, aliases: AliasTable | None = None) -> EntityMatches:
    """Memories linked to entities the query names: ``(row_id, specificity)`` best first.

    A memory's specificity is that of the rarest query entity it mentions, ``log(N / df) / log(N)``:
    1 for an entity one memory mentions, 0 for one that every memory mentions (the user's
    own name in a personal cube says nothing about which memory is meant). Ties go to the
    older memory (lower row id).

    The work stays bounded as the cube grows: SQLite counts each name's memories, and only
    the ``k`` best are read, rarest name first, instead of every memory a common name links to.
    """
    keys = query_keys(q.query) | set(misspelt_names(q.query, view.known_entities).values())
    if not keys:
        return EntityMatches([], {})
    if aliases is not None:
        # A name reaches every name of its group: "Marco" finds "Marco Bianchi" and the reverse.
        keys = {member for key in keys for member in (aliases.group(key) if aliases.knows(key) else [key])}
    counts, searchable = view.entity_counts(q, sorted(keys))
    if not counts:
        return EntityMatches([], {})
    canonical = {norm: (aliases.canonical(norm) if aliases is not None else norm) for norm in counts}
    total = max(2, searchable)
    df: Counter[str] = Counter()
    for norm, count in counts.items():
        df[canonical[norm]] += count
    specificity = {name: max(0.0, math.log(total / n) / math.log(total)) for name, n in df.items()}
    ranked: list[tuple[int, float]] = []
    taken: set[int] = set()
    # A memory counts at its rarest name: take the memories of the rarest names first, each
    # level in row order, and leave out those a rarer name already took.
    for level in sorted(set(specificity.values()), reverse=True):
        if len(ranked) >= k:
            break
        norms = sorted(norm for norm, name in canonical.items() if specificity[name] == level)
        for row_id in view.entity_first_rows(q, norms, k - len(ranked), exclude=sorted(taken)):
            ranked.append((row_id, level))
            taken.add(row_id)
    return EntityMatches(ranked, canonical, specificity)


def vector_query_text(view: SearchReads, query: str) -> str:
    """The query less the names of entities this cube knows: the vector looks for *what*, the entity signal for *who*."""
    keys = [k for k in query_keys(query) if not k.startswith(("@", "#"))]
    if not keys:
        return query
    known = view.known_entities(keys)
    stripped = query
    for name in sorted(known, key=len, reverse=True):
        words = r"\s+".join(re.escape(w) for w in name.split())
        stripped = re.sub(rf"(?<!\w){words}(?:['’]s)?(?!\w)", " ", stripped, flags=re.IGNORECASE)
    stripped = re.sub(r"\s+", " ", stripped).strip()
    return stripped if _TOKEN.search(stripped) and stripped != query.strip() else query


def keyword_candidates(
    view: SearchReads, q: SearchQuery, k: int, *, table: FtsTable = "memory_fts", few: bool = False
) -> list[tuple[int, float, bool]]:
    """BM25 matches of the query's content words (see ``SearchView.keyword_candidates``).

    Inside a time window the words' irregular forms match too: the window has narrowed the
    memories, and its topic is often one verb ("which restaurant did I try"). Over a whole
    cube of chat, the forms of common verbs ("went", "said") matched so many lines that recall
    fell (bench/locomo.py --quick, turns R@10 0.852 -> 0.839), so a search without one keeps the words alone.
    """
    terms = keyword_terms(q.query, forms=q.since is not None or q.until is not None)
    if terms is None:
        return []
    return view.keyword_candidates(q, terms, k, table=table, few=few)


def _scaled(ranked: Sequence[tuple[int, float] | tuple[int, float, bool]]) -> list[tuple[int, float, float]]:
    """(row_id, raw, raw / best) for a higher-is-better list."""
    if not ranked:
        return []
    top = max(item[1] for item in ranked)
    return [(item[0], item[1], item[1] / top if top > 0 else 0.0) for item in ranked]


def _best_per_row(*lists: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """Each row once, with its highest-scaled entry among the lists."""
    best: dict[int, tuple[int, float, float]] = {}
    for items in lists:
        for item in items:
            if item[0] not in best or item[2] > best[item[0]][2]:
                best[item[0]] = item
    return list(best.values())


@dataclass
class VectorRanking:
    """The vector signal's view of a query: its vector, the cube's top cosines, and their spread."""

    cosines: QueryCosines
    rank: dict[int, int]  # row_id -> rank, for the ``pool`` most similar memories
    mean: float
    std: float
    unranked: int  # the rank given to a candidate outside the top


def rank_by_vector(
    mirror: VectorScores, vector: np.ndarray, pool: int, *, include_archived: bool, allowed: np.ndarray | None
) -> VectorRanking | None:
    cosines = mirror.cosines(vector, include_archived=include_archived, allowed=allowed)
    scores = cosines.scores
    if not len(scores):
        return None
    # A z-score: how far a memory stands above this cube's typical similarity to the query.
    mean, std = cosines.mean, cosines.std
    rank = {row_id: r for r, (row_id, _) in enumerate(cosines.top(pool), start=1)}
    return VectorRanking(cosines=cosines, rank=rank, mean=mean, std=std if std > 1e-9 else 1.0, unranked=len(rank) + 1)


def hybrid_search(
    store: SearchSource,
    mirror: VectorScores,
    q: SearchQuery,
    embed: Callable[[str], np.ndarray] | None,
    aliases: AliasTable | None = None,
    reads: Callable[[list[str]], list[bool]] | None = None,
) -> tuple[list[SearchHit], list[int]]:
    """The ``q.limit`` best memories for ``q``, each with the signals that found it, and their row ids.

    ``embed`` turns the query into a vector (None: no vector signal); ``reads`` tells which words
    the embedding model reads as words (``Embedder.reads_words``; see ``query_cover``). The query is embedded
    and scored against every stored vector on another thread while this one runs the
    keyword, context and entity stages in SQLite (both release the GIL), so on two cores the
    vector stage costs little more wall time than the longer of the two halves.
    """
    pool = max(MIN_POOL, q.limit * 5)
    candidates: dict[int, ScoredRow] = {}

    def candidate(row_id: int) -> ScoredRow:
        return candidates.setdefault(row_id, ScoredRow(row_id))

    vector_stage: Future[VectorRanking | None] | None = None
    context_stage: Future[list[tuple[int, float, bool]]] | None = None
    said: dict[int, str] = {}
    cover: tuple[float, float] | None = None  # (words held, words meaning something): ``query_cover``
    try:
        with store.search_view() as view, store.side_view() as side:
            allowed = view.filtered_row_ids(q)  # None: no filters
            # Filters that keep few memories (a time window of a large cube): the keyword stages
            # rank those alone, instead of first the best matches of the whole index.
            few = allowed is not None and len(allowed) * FEW_FILTERED < view.searchable_count(q.include_archived)
            if "vector" in q.signals and embed is not None:
                text = vector_query_text(view, q.query)
                view.sync(mirror)
                # The whole vector stage (embedding, then scoring every stored vector) runs on
                # another thread while this one runs the keyword, context and entity stages in
                # SQLite: both release the GIL, so on two cores the two halves overlap.
                vector_stage = parallel.soon(
                    lambda: rank_by_vector(mirror, embed(text), pool, include_archived=q.include_archived, allowed=allowed)
                )
            if "context" in q.signals:
                # The context windows' BM25 on the second connection, beside this thread's stages.
                context_stage = parallel.soon(lambda: keyword_candidates(side, q, pool, table="memory_context_fts", few=few))
            if "keyword" in q.signals:
                # A query that is a memory's exact text asks for that memory, whatever the other signals say.
                for row_id in view.exact_matches(q):
                    candidate(row_id).add("exact", 1, 1.0, WEIGHTS["exact"])
            own = keyword_candidates(view, q, pool, few=few) if {"keyword", "context"} & set(q.signals) else []
            if "keyword" in q.signals:
                for rank, (row_id, raw, scaled) in enumerate(_scaled(own), start=1):
                    candidate(row_id).add("keyword", rank, raw, WEIGHTS["keyword"] * scaled)
            # Read while the context stage runs; scored after it, in the usual order.
            entities = entity_matches(view, q, pool, aliases) if "entity" in q.signals else None
            if context_stage is not None:
                # Threaded memories are matched through their windows; a memory without a
                # thread is its own window, so its own-text match stands in (not indexed twice).
                # A fact or preference in a thread keeps the better of the two (threads.STANDALONE_TYPES).
                windows = _scaled(context_stage.result())
                alone = _scaled([m for m in own if not m[2]])
                merged = sorted(_best_per_row(windows, alone), key=lambda item: (-item[2], item[0]))
                for rank, (row_id, raw, scaled) in enumerate(merged, start=1):
                    candidate(row_id).add("context", rank, raw, WEIGHTS["context"] * scaled)
            if entities is not None:
                for rank, (row_id, specificity) in enumerate(entities.ranked, start=1):
                    candidate(row_id).add("entity", rank, specificity, WEIGHTS["entity"] * specificity)
            ranking = vector_stage.result() if vector_stage is not None else None
            windowed = q.since is not None or q.until is not None  # the keyword stages then match word forms
            cover = query_cover(view, q.query, reads, forms=windowed) if ranking is not None else None
            if ranking is not None:
                for row_id in ranking.rank:
                    candidate(row_id)
                for row_id, cosine in ranking.cosines.of(candidates).items():
                    candidates[row_id].add(
                        "vector",
                        ranking.rank.get(row_id, ranking.unranked),
                        cosine,
                        WEIGHTS["vector"] * (cosine - ranking.mean) / ranking.std,
                    )
            if entities is not None and entities.canonical and candidates:
                said, linked = entities.candidate_links(view, q, list(candidates))
                first = {row_id for row_id, _ in entities.ranked}
                found_otherwise = [(row_id, specificity) for row_id, specificity in linked if row_id not in first]
                for rank, (row_id, specificity) in enumerate(found_otherwise, start=len(first) + 1):
                    candidates[row_id].add("entity", rank, specificity, WEIGHTS["entity"] * specificity)
    finally:
        # Waited on even when a stage failed: the side view and the mirror must not outlive the search.
        for stage in (context_stage, vector_stage):
            if stage is not None:
                stage.exception()

    # Said by someone the query names: a bonus among the memories found, not a way to be found.
    for row_id in said.keys() & candidates.keys():
        candidates[row_id].add("speaker", 1, 1.0, WEIGHTS["speaker"])

    ranked = sorted(candidates.values(), key=lambda c: (-c.fused, c.row_id))
    if len(q.signals) > 1:  # a one-signal search shows that signal's own ranking (a diagnostic view)
        head = max(RERANK_HEAD, q.limit * 3)  # the reordering below only ever reaches this deep
        rows = store.hit_rows([c.row_id for c in ranked[:head]])  # one read for the priors and the hits
        reordered = _someone_elses_kin(_asks_last(_long_texts_diluted(ranked[:head], rows), rows), rows, q.query)
        ranked = _each_speaker_in_turn(reordered, said) + ranked[head:]
    else:
        rows = store.hit_rows([c.row_id for c in ranked[: q.limit]])
    ranked = ranked[: q.limit]
    hits = []
    for candidate_ in ranked:
        row = rows.get(candidate_.row_id)
        if row is None:  # purged between the ranking and the read
            continue
        memory_id, text, type_, tags, occurred_at, created_at, status, state, due_at, parent_id = row
        hits.append(
            SearchHit(
                id=memory_id,
                text=text,
                score=round(candidate_.fused, 6),
                type=type_,
                tags=json.loads(tags or "[]"),
                occurred_at=occurred_at,
                created_at=created_at,
                status=status,
                state=state,
                due_at=due_at,
                parent_id=parent_id,
                signals=candidate_.explained(),
            )
        )
    row_ids = [c.row_id for c in ranked if c.row_id in rows]
    if cover is not None:  # the relevance floor reads it with the vector's cosine
        for hit in hits:
            hit.cover_query(*cover)
    return hits, row_ids


def query_cover(
    view: SearchReads, query: str, reads: Callable[[list[str]], list[bool]] | None, *, forms: bool = False
) -> tuple[float, float]:
    """How much of the query this cube can speak to: the share of its content words some memory holds,
    and the share that carry meaning at all.

    A word no memory holds that the embedding model reads as letters, not as a word or a stem it
    knows (``reads``, per word), means nothing to either signal: a made-up word, a rare name, a
    garbled typo. The vector still scores the query's fragments against every memory, and a best
    cosine reached through them measures noise (memory.retrieval.relevance.strength).
    """
    # Time words say when, not what: a cube holding no "March" or "2020" may still hold the topic.
    words = content_words(resolve_time(query)[1])[:32]
    if not words:
        return 1.0, 1.0
    if forms:  # as the keyword stages matched them: a word is held when one of its forms is ("try": "tried")
        alternatives = {w: [t for t in with_forms([w]) if t == w or t not in STOPWORDS] for w in words}
        none_holds = set(view.unheld_words(list(dict.fromkeys(t for ts in alternatives.values() for t in ts))))
        unheld = [w for w in words if none_holds.issuperset(alternatives[w])]
    else:
        unheld = view.unheld_words(words)
    unread = [w for w, read in zip(unheld, reads(unheld), strict=True) if not read] if reads and unheld else []
    return 1.0 - len(unheld) / len(words), 1.0 - len(unread) / len(words)


# A memory that ends with a question asks rather than tells: in a conversation the answer is
# the next turn (found through its own signals and its context window), so the question
# itself gives way to statements that score nearly as well.
ASKS_PENALTY = 0.2
RERANK_HEAD = 50
_ASKS = re.compile(r"\?\s*(?:\[[^\]]*\]\s*)?$")  # "...?" or "...? [shares a photo: ...]"


def _long_texts_diluted(ranked: list[ScoredRow], rows: dict[int, tuple]) -> list[ScoredRow]:
    """``ranked`` with each long memory's match signals scaled by ``length_factor`` (a pasted,
    keyword-stuffed note cannot outrank a precise one by matching every word somewhere)."""
    for candidate in ranked:
        row = rows.get(candidate.row_id)
        factor = length_factor(len(row[1])) if row is not None else 1.0
        if factor < 1.0:
            for signal in MATCH_SIGNALS:
                part = candidate.parts.get(signal, 0.0)
                if part > 0:
                    candidate.fused -= part * (1.0 - factor)
                    candidate.parts[signal] = part * factor
            candidate.signals["length"] = (1, factor)
    return sorted(ranked, key=lambda c: (-c.fused, c.row_id))


def _asks_last(ranked: list[ScoredRow], rows: dict[int, tuple]) -> list[ScoredRow]:
    """``ranked`` with the memories that end in a question moved down by ``ASKS_PENALTY``."""
    for candidate in ranked:
        row = rows.get(candidate.row_id)
        if row is not None and _ASKS.search(row[1][-200:]):
            candidate.add("asks", 1, -ASKS_PENALTY, -ASKS_PENALTY)
    return sorted(ranked, key=lambda c: (-c.fused, c.row_id))


def _someone_elses_kin(ranked: list[ScoredRow], rows: dict[int, tuple], query: str) -> list[ScoredRow]:
    """``ranked`` without the word match of memories that share with the query only a kinship word
    the query means as the speaker's own relative and the memory as someone else's (``memory.retrieval.kin``)."""
    own = kin.own_kin(query)
    if not own:
        return ranked
    others = [w for w in content_words(resolve_time(query)[1]) if w not in own]  # time words say when, not what
    changed = False
    for candidate in ranked:
        row = rows.get(candidate.row_id)
        if row is None or not any(kin.only_someone_elses(row[1], word) for word in own):
            continue
        held = {w.lower() for w in _TOKEN.findall(row[1])}
        if any(w in held or any(h.startswith(w[:5]) for h in held if len(w) >= 5) for w in others):
            continue  # it shares more with the query than the word: its match stands
        for signal in ("keyword", "context"):
            part = candidate.parts.pop(signal, 0.0)
            if part > 0:
                candidate.fused -= part
                candidate.signals.pop(signal, None)
        candidate.signals["kin"] = (1, 0.0)
        changed = True
    return sorted(ranked, key=lambda c: (-c.fused, c.row_id)) if changed else ranked


def _each_speaker_in_turn(ranked: list[ScoredRow], said: dict[int, str]) -> list[ScoredRow]:
    """When the query names several people who speak in the cube, their memories take turns.

    "What do Tomas and Wen both enjoy?" needs what each of them said; the fused score
    alone can fill the top with one of them. Each named speaker's memories keep their order
    and alternate, starting with the speaker of the best one; a memory said by nobody named
    keeps its place ahead of any speaker's memory it outranked.
    """
    speakers = list(dict.fromkeys(said[c.row_id] for c in ranked if c.row_id in said))
    if len(speakers) < 2:
        return ranked
    queues = {s: [c for c in ranked if said.get(c.row_id) == s] for s in speakers}
    position = {c.row_id: i for i, c in enumerate(ranked)}
    others = [c for c in ranked if c.row_id not in said]
    out: list[ScoredRow] = []
    turn = 0
    while any(queues.values()):
        queue = queues[speakers[turn % len(speakers)]]
        turn += 1
        if not queue:
            continue
        pick = queue.pop(0)
        while others and position[others[0].row_id] < position[pick.row_id]:
            out.append(others.pop(0))
        out.append(pick)
    return out + others


def context_turns(store: AnyCubeStore, hits: list[SearchHit], turns: int, *, include_archived: bool = False) -> list[ContextTurn]:
    """The thread neighbours of each hit (``turns`` on each side), without the hits themselves or repeats."""
    if turns <= 0 or not hits:
        return []
    statuses = ("active", "archived") if include_archived else ("active",)
    seen = {h.id for h in hits}
    out: list[ContextTurn] = []
    wanted = store.thread_neighbours_of([h.id for h in hits], turns, statuses)
    memories = store.get_by_row_ids(list({r for _, r, _ in wanted}))
    for hit_id, row_id, offset in wanted:
        memory = memories.get(row_id)
        if memory is None or memory.id in seen:
            continue
        seen.add(memory.id)
        out.append(
            ContextTurn(
                id=memory.id,
                text=memory.text,
                occurred_at=memory.occurred_at,
                session_id=memory.session_id,
                context_of=hit_id,
                offset=offset,
            )
        )
    return out
