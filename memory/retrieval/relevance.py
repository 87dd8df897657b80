"""How well a hit matches its query, on a scale a person can read, and the floor below which hits are left out.

The fused score ranks memories against each other; it says nothing about whether the best
one is any good (a nonsense query still has a "best" memory). ``strength`` reads the
signals that do carry an absolute meaning: the raw cosine between query and memory, less
what the query's meaningless words reached (words the embedding model reads as letters and
no memory holds: made-up words, a garbled name; ``SearchHit.query_cover``), plus a little for
shared words, less when the cube holds few of the query's words (one everyday word of an
off-topic question is not its topic), and for an entity the query names (more for a rarer one; a rare
entity lifts a hit to ``ENTITY_LIFT`` times its specificity: enough to pass the floor, "who
is Carol" is answered by Carol's memories, not to read as high), full marks for the exact
text, and all of it scaled down for a long text (``length_factor``: a pasted,
keyword-stuffed note matches everything a little).

A query of stop words alone ("what is it", "the of and") asks for nothing: no hit passes.
Otherwise a result whose best hit is under ``FLOOR`` holds nothing relevant; in one that does,
a hit found by the vector alone (no shared word, no entity) stays only within ``NEAR_BEST`` of
the best hit's strength, any other hit down to ``FAR_BELOW`` of it (and ``HIT_FLOOR``): a result
is not padded to the limit with hits far weaker than its best.
``confidence`` is "high" for a hit at ``HIGH`` or more that stands ``HIGH_GAP`` above every
other hit of the result (the answer, not one of many alike), "medium" over the floor, "low"
under it. The constants were fitted on labelled hits of LoCoMo (turns and facts) and of the
personal-assistant dev set together (bench/relevance_floor.py, bench/understanding.py;
bench/RESULTS.md has the reliability table).
"""

from __future__ import annotations

from collections.abc import Sequence

from memory.models import SearchHit
from memory.retrieval.search import content_words, length_factor

# 0.35 emptied every nonsense query of the dev set but also a true paraphrase match ("playing a
# string instrument" -> the violin memory, cosine 0.333, tests/test_bulk_import.py): 0.3 keeps it.
FLOOR = 0.3
HIT_FLOOR = 0.05
NEAR_BEST = 0.7
FAR_BELOW = 0.3
HIGH = 0.6
HIGH_GAP = 0.1
WORDS_BONUS = 0.15
# Shared words earn the whole bonus when the cube holds two thirds of the query's content words or
# more. Replaying every hit of the dev set and LoCoMo (both arrivals, weak hits included), 2/3 and
# 3/4 kept every real question's hits and emptied every nonsense query; the plain share (1.0) lost
# LoCoMo turns recall at 10 (.852 -> .848).
WORDS_HELD = 2 / 3
ENTITY_BONUS = 0.1
ENTITY_SPECIFIC_BONUS = 0.1
ENTITY_LIFT = 0.5
WORD_SIGNALS = ("keyword", "context", "entity", "exact")


def strength(hit: SearchHit) -> float | None:
    """0..1 (exact text: 1); None when the search ran without the vector signal (no absolute scale)."""
    if "exact" in hit.signals:
        return 1.0
    vector = hit.signals.get("vector")
    if vector is None:
        return None
    held, meaning = hit.query_cover
    # Words that mean nothing to the model nor to the cube (read as letters, held by no memory) take
    # their share of the cosine away, up to the floor: the cosine of unrelated text, which their
    # fragments reach against some memory of any cube. A query of such words alone must match twice
    # as well as the floor. Shared words count for as much of the query as the cube holds words of,
    # fully from ``WORDS_HELD`` on: a question most of whose words no memory holds is about something
    # else, and the one everyday word it shares with a memory is not its topic.
    value = vector.score - (1.0 - meaning) * min(max(vector.score, 0.0), FLOOR)
    if "keyword" in hit.signals or "context" in hit.signals:
        value += WORDS_BONUS * min(1.0, held / WORDS_HELD)
    entity = hit.signals.get("entity")
    if entity is not None:
        # The vector reads the query without the names the cube knows ("what do I know about
        # Carol" -> "what do I know about"): a rare entity named is evidence of the topic.
        value = max(value + ENTITY_BONUS + ENTITY_SPECIFIC_BONUS * entity.score, ENTITY_LIFT * entity.score)
    return max(0.0, min(1.0, value * length_factor(len(hit.text))))


def asks_anything(query: str) -> bool:
    """Whether a query has a word that carries a topic (not stop words alone)."""
    return bool(content_words(query))


def level(value: float | None, floor: float = FLOOR, *, stands_out: bool = True) -> str:
    """high, medium or low: how a person reads a hit's strength (high also needs the hit to stand out of its result)."""
    if value is None:
        return "medium"
    if value >= HIGH and stands_out:
        return "high"
    return "medium" if value >= floor else "low"


def kept(
    strengths: Sequence[float | None],
    floor: float = FLOOR,
    hit_floor: float = HIT_FLOOR,
    matched: Sequence[bool] | None = None,
) -> list[bool]:
    """Which hits pass: none when the best is under ``floor``, else those at or over ``hit_floor``
    and ``FAR_BELOW`` times the best, and of those the vector alone found (``matched`` False: no
    shared word or entity), only those within ``NEAR_BEST`` of the best.

    A hit without a strength (no vector signal) always passes: there is no scale to judge it on.
    """
    known = [s for s in strengths if s is not None]
    if known and max(known) < floor:
        return [s is None for s in strengths]
    best = max(known, default=0.0)
    words = matched if matched is not None else [True] * len(strengths)
    least = max(hit_floor, best * FAR_BELOW)
    return [s is None or (s >= least and (w or s >= best * NEAR_BEST)) for s, w in zip(strengths, words, strict=True)]


def standing_out(values: Sequence[float | None]) -> list[bool]:
    """For each hit, whether its strength stands ``HIGH_GAP`` above every other hit's."""
    known = [v if v is not None else 0.0 for v in values]
    top = sorted(known, reverse=True)[:2] + [0.0, 0.0]
    # The best other hit is the second best for the best hit, the best for every other.
    return [value - (top[1] if value == top[0] else top[0]) >= HIGH_GAP for value in known]


def apply_floor(
    hits: Sequence[SearchHit],
    *,
    keep_weak: bool,
    floor: float = FLOOR,
    filtered: bool = False,
    query: str | None = None,
    windowed: bool = False,
) -> tuple[list[SearchHit], int]:
    """Each hit labelled with its confidence; those under the floor dropped unless ``keep_weak``. Returns (hits, dropped).

    ``filtered``: the hits meet structured filters the query named ("overdue tasks"); they
    answer it whatever their words, so they read as high and none is dropped. ``query``: the
    text searched; when it is stop words alone, every hit but an exact one reads as low.
    ``windowed``: the hits lie in the time window the query named, and the query has a topic
    ("what did I buy last week"): the time already narrowed them, so no absolute floor (a short
    query is weak everywhere), but one far weaker than the best (under ``FAR_BELOW`` of it) that
    shares no word or entity with the query is padding, and is left out. (Holding the hits the
    vector alone found to ``NEAR_BEST`` too, as outside a window, lost gold hits of the dev set's
    time questions: R@10 0.992 -> 0.983.)
    """
    values = [strength(hit) for hit in hits]
    if query is not None and not asks_anything(query):
        values = [1.0 if "exact" in hit.signals else 0.0 for hit in hits]
    out = standing_out(values)
    for hit, value, alone in zip(hits, values, out, strict=True):
        hit.confidence = "high" if filtered else level(value, floor, stands_out=alone)
    if keep_weak or filtered:
        return list(hits), 0
    matched = [any(s in hit.signals for s in WORD_SIGNALS) for hit in hits]
    if windowed:
        best = max((v for v in values if v is not None), default=0.0)
        mask = [v is None or w or v >= best * FAR_BELOW for v, w in zip(values, matched, strict=True)]
    else:
        mask = kept(values, floor, matched=matched)
    return [h for h, keep in zip(hits, mask, strict=True) if keep], mask.count(False)
