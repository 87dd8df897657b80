"""A name written one letter off: "Anna" in a question about the cube's Ana, "Katherine" for Katharine.

People misspell names in questions ("Which towns did Ines and Anna go to?" of a cube that
knows Ana and Tomas); the entity stage matches names exactly, so such a question lost its entity
and its memories fell to the vector alone. A capitalised query word (not the first of a
sentence) that names no entity of the cube stands for the one entity one edit away (a letter
dropped, added, changed, or two swapped), when exactly one such entity is known; two or more
(Dan: Don and Dana) stay unresolved rather than mix people up.

The variants are generated, not searched for: a word of n letters has about 54n + 25 of them,
looked up in one indexed read, so the cost does not grow with the cube.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from memory.entities import normalize

MIN_LETTERS = 4  # "Ann" -> "Dan", "Jan", "Ian"...: shorter names are too close to each other
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
# A capitalised word that is not the first of the text or of a sentence.
_INNER_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)(?<=\s)([A-Z][a-z]+)\b")


def one_edit_away(word: str) -> set[str]:
    """Every lower-case spelling one edit from ``word`` (Damerau: a transposition counts as one)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    dropped = {a + b[1:] for a, b in splits if b}
    swapped = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    changed = {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    added = {a + c + b for a, b in splits for c in _LETTERS}
    return (dropped | swapped | changed | added) - {word}


def misspelt_names(query: str, known: Callable[[list[str]], list[str]]) -> dict[str, str]:
    """Query name -> the one known entity key it misspells; ``known`` says which keys the cube holds."""
    words = {normalize(w) for w in _INNER_CAPITALISED.findall(query) if len(w) >= MIN_LETTERS}
    if not words:
        return {}
    held = set(known(sorted(words)))
    found: dict[str, str] = {}
    for word in sorted(words - held):
        matches = known(sorted(one_edit_away(word)))
        if len(matches) == 1:
            found[word] = matches[0]
    return found
