"""Diversity among near-duplicates: a memory that restates a better-ranked one gives way.

An assistant that saves facts saves the same thing more than once ("Alice is looking for a
job in design", then "Alice is applying to design jobs"). Both match a query alike, and
together they fill the top of the ranking with one piece of information while the others a
question needs (the several places someone camped, the several things someone painted)
fall below the cut. Among the best few candidates, a memory whose vector is nearly the same
as a better-ranked memory's (cosine at least ``THRESHOLD``) loses ``PENALTY`` of its fused
score: it stays findable, it just no longer crowds out what is new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

THRESHOLD = 0.8
PENALTY = 0.3


class Scored(Protocol):
    row_id: int
    fused: float

    def add(self, signal: str, rank: int, score: float, contribution: float) -> None: ...


def repeats_last(ranked: Sequence[Scored], vectors: Mapping[int, np.ndarray], *,
                 threshold: float = THRESHOLD, penalty: float = PENALTY) -> list[Scored]:
    """``ranked`` (best first) with each near-duplicate of a better-ranked memory moved down by ``penalty``.

    A memory is compared with the better-ranked memories that are not themselves repeats,
    so a cluster of restatements keeps its best member in place. Memories without a vector
    are left as they are.
    """
    kept: list[np.ndarray] = []
    for candidate in ranked:
        vector = vectors.get(candidate.row_id)
        if vector is None:
            continue
        if kept:
            closest = float(np.max(np.stack(kept) @ vector))
            if closest >= threshold:
                candidate.add("repeat", 1, closest, -penalty)
                continue
        kept.append(vector)
    return sorted(ranked, key=lambda c: (-c.fused, c.row_id))
