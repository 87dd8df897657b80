"""How well a hit matches its query, on a scale a person can read, and the floor below which hits are left out.

The fused score ranks memories against each other; it says nothing about whether the best
one is any good (a nonsense query still has a "best" memory). ``strength`` reads the
signals that do carry an absolute meaning: the raw cosine between query and memory, plus
a little for shared words and for an entity the query names (at least the entity's
specificity: naming a rare entity is a match in itself), and full marks for the exact
text. Hits under ``FLOOR`` are left out unless the caller asks for them; the floor was
chosen on bench/relevance_floor.py (recall at 10 on LoCoMo kept, nonsense queries emptied;
see bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from memory.models import SearchHit

# A result whose best hit is under FLOOR holds nothing relevant; in a result that does, hits
# under HIT_FLOOR are left out. Chosen on bench/relevance_floor.py (bench/RESULTS.md, issue 15).
FLOOR = 0.2
HIT_FLOOR = 0.05
HIGH = 0.5
WORDS_BONUS = 0.1
ENTITY_BONUS = 0.1


def strength(hit: SearchHit) -> float | None:
    """0..1 (exact text: 1); None when the search ran without the vector signal (no absolute scale)."""
    if "exact" in hit.signals:
        return 1.0
    vector = hit.signals.get("vector")
    if vector is None:
        return None
    value = vector.score
    if "keyword" in hit.signals or "context" in hit.signals:
        value += WORDS_BONUS
    entity = hit.signals.get("entity")
    if entity is not None:
        # The vector reads the query without the names the cube knows ("what do I know about
        # Carol" -> "what do I know about"): a rare entity named is itself the evidence.
        value = max(value + ENTITY_BONUS, entity.score)
    return max(0.0, min(1.0, value))


def level(value: float | None, floor: float = FLOOR) -> str:
    """high, medium or low: how a person reads a hit's strength."""
    if value is None:
        return "medium"
    if value >= HIGH:
        return "high"
    return "medium" if value >= floor else "low"


def kept(strengths: Sequence[float | None], floor: float = FLOOR, hit_floor: float = HIT_FLOOR) -> list[bool]:
    """Which hits pass: none when the best is under ``floor``, else those at or over ``hit_floor``.

    A hit without a strength (no vector signal) always passes: there is no scale to judge it on.
    """
    known = [s for s in strengths if s is not None]
    if known and max(known) < floor:
        return [s is None for s in strengths]
    return [s is None or s >= hit_floor for s in strengths]


def apply_floor(
    hits: Sequence[SearchHit], *, keep_weak: bool, floor: float = FLOOR, filtered: bool = False
) -> tuple[list[SearchHit], int]:
    """Each hit labelled with its confidence; those under the floor dropped unless ``keep_weak``. Returns (hits, dropped).

    ``filtered``: the hits meet structured filters the query named ("overdue tasks"); they
    answer it whatever their words, so they read as high and none is dropped.
    """
    values = [strength(hit) for hit in hits]
    for hit, value in zip(hits, values, strict=True):
        hit.confidence = "high" if filtered else level(value, floor)
    if keep_weak or filtered:
        return list(hits), 0
    mask = kept(values, floor)
    return [h for h, keep in zip(hits, mask, strict=True) if keep], mask.count(False)
