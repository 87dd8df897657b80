"""Whose mother: a kinship word the query uses for the speaker's own relative, against a memory
that uses it only for someone else's.

"What did Mom say on the phone?" asks about the person's own mother. A memory about
"Omar's mom" shares the word "mom" and little else, and the keyword signals cannot tell the
two apart (both hold the word once). A kinship word is the speaker's own when it is used as a
name (capitalised mid-sentence: "Mom", "Dad", "Grandma") or after "my"; it is someone else's
after a possessive ("Omar's mom", "his dad", "her sister"). Only memories that hold the word
*only* as someone else's, and share no other content word with the query, are affected: their
word match was on another person.
"""

from __future__ import annotations

import re

from memory.entities import KINSHIP

# Kinship words a person uses as a name for their own relative ("Mom said ...").
NAME_LIKE = frozenset(["mom", "mum", "dad", "mama", "papa", "grandma", "grandpa", "granny", "nana", "nanna", "nonna", "nonno"])
RELATIVES = KINSHIP | frozenset(["mother", "father", "wife", "husband", "son", "daughter", "grandmother", "grandfather"])
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
_OTHERS = frozenset(["his", "her", "their", "your", "whose"])


def own_kin(query: str) -> set[str]:
    """The kinship words ``query`` uses for the speaker's own relatives (lower-cased)."""
    words = _WORD.findall(query)
    own: set[str] = set()
    for i, word in enumerate(words):
        lower = word.lower().removesuffix("'s").removesuffix("’s")
        if lower not in RELATIVES:
            continue
        before = words[i - 1].lower() if i > 0 else ""
        if before == "my" or (lower in NAME_LIKE and word[0].isupper() and not _possessive(before)):
            own.add(lower)
    return own


def only_someone_elses(text: str, kin: str) -> bool:
    """Whether ``text`` holds the kinship word ``kin``, and only after another's possessive."""
    words = _WORD.findall(text)
    uses = [i for i, word in enumerate(words) if word.lower() in (kin, kin + "s", kin + "'s", kin + "’s")]
    return bool(uses) and all(i > 0 and _possessive(words[i - 1].lower()) for i in uses)


def _possessive(word: str) -> bool:
    return word in _OTHERS or (word.endswith(("'s", "’s", "s'")) and len(word) > 2)
