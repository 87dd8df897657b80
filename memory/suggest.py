"""A near-miss suggestion for a mistyped word ("tsk" -> "did you mean task?")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def near_miss(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the closest of ``choices``, or ``""`` when none is close."""
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        # A plural or a longer form of a known word ("preferences", "tasks").
        close = [c for c in options if word.startswith(c) and len(word) - len(c) <= 3][:1]
    return f" (did you mean {close[0]}?)" if close else ""
