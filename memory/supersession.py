"""When a new fact or preference replaces, restates or sits beside an older one (issue 18).

A pure decision over two memories and the cosine of their vectors: no I/O, no model. The
cube gathers the candidates (live memories of the same type and role, close in meaning)
and asks ``decide`` about each one; the store carries out the answer.

The rule, in order:

1. Different type or role, or a type that never supersedes: **distinct**.
2. Both carry a subject key from the client: the same key is a **replace** (a near-exact
   restatement is a **restate**), a different key is **distinct**. The client is the
   smart extractor; its key is trusted as given.
3. Otherwise the judgement is local and errs towards keeping both memories, because a
   wrongly hidden true memory is lost to search, while a kept stale one is only
   outranked:

   - **restate** when the new text is the old one in other words: close in meaning
     (``RESTATE_COSINE``), no content word the old text lacks, the same numbers, the same
     polarity, the names they share in the same order (who did what to whom), and no word
     of repetition or change;
   - **replace** when the new text says that something changed ("no longer", "switched",
     "moved to" ...; "now" alone only where the new text has the old one's words but
     for one, the changed value), names no addition or repetition ("also", "again",
     "another" ...), is close in meaning to the old (``REPLACE_COSINE``), both are
     about the same entity (or neither names one), and the old one states how things
     are rather than something that happened: a past event stays true whatever comes
     after it;
   - **distinct** in every other case.

The thresholds were chosen on ``bench/data/supersession_pairs.jsonl`` with
``bench/supersession.py``, which prints the precision and recall of this rule beside the
older one (cosine and a shared entity alone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from memory.entities import _COMMON, normalize  # _COMMON: capitalised words that name nothing, shared with the entity pass
from memory.models import SUPERSEDING_TYPES
from memory.stopwords import STOPWORDS

Verdict = Literal["replace", "restate", "distinct"]

RESTATE_COSINE = 0.85
# Below this cosine a word of change is as likely to be about something else of the same
# person ("Omar and Leila moved to a new house" beside "Omar is married to Leila").
REPLACE_COSINE = 0.8
# "Now" alone: the new text must say the old one's words but for at most this many.
NOW_NOVEL_WORDS = 1
MAIN_VERB_WINDOW = 4
# The rule this module replaced: same type and role, a shared entity (or none on either
# side) and this cosine were enough to archive the older memory.
OLD_RULE_COSINE = 0.8


@dataclass(frozen=True)
class Candidate:
    """What the decision reads of one memory."""

    text: str
    type: str
    role: str | None = None
    subject: str | None = None  # normalised subject key, as stored
    entities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_NUMBER = re.compile(r"\d+(?:[.:,]\d+)*")

# Words that say a state changed. Matched on the lower-cased text. "Now" alone is weaker: it
# also opens news that adds to what was true ("Omar and Leila now have a baby").
_CHANGE = re.compile(
    r"\b(?:no longer|any ?more|any longer|instead|switched|switching|changed|changing|"
    r"moved (?:to|from|into|out)|has moved|have moved|stopped|quit|gave up|given up|used to|"
    r"from now on|left (?:the|her|his|their|my|a)|sold (?:the|her|his|their|my))\b"
)
_NOW = re.compile(r"\b(?:now|nowadays|these days)\b")
# Words that say the new memory adds to the older one or repeats an occasion.
_ADDITION = re.compile(r"\b(?:also|too|as well|again|another|once more|more than one|both|in addition|additionally|other)\b")
_NEGATION = re.compile(r"\b(?:not|no|never|none|nothing|n't|doesn't|don't|didn't|isn't|wasn't|can't|cannot|won't)\b|n't\b")
# A past occasion: a time in the past, or a verb in the past tense that is not a state
# ("is married", "got engaged" read as states). Such a memory stays true after any change.
_PAST_TIME = re.compile(
    r"\b(?:yesterday|ago|last (?:week|month|year|night|weekend|spring|summer|autumn|fall|winter|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday)|recently|earlier|once|in (?:19|20)\d\d|on (?:monday|tuesday|wednesday|thursday|"
    r"friday|saturday|sunday)|this (?:morning|afternoon|week|month))\b"
)
_IRREGULAR_PAST = frozenset(
    [
        "went",
        "took",
        "saw",
        "ran",
        "made",
        "had",
        "got",
        "bought",
        "built",
        "wrote",
        "read",
        "met",
        "flew",
        "drove",
        "gave",
        "won",
        "lost",
        "began",
        "sang",
        "swam",
        "sold",
        "brought",
        "thought",
        "found",
        "told",
        "felt",
        "left",
        "kept",
        "held",
        "heard",
        "taught",
        "caught",
        "spent",
        "sent",
        "fell",
        "grew",
        "knew",
        "drew",
    ]
)
_STATE_AUXILIARIES = frozenset(
    ["is", "are", "am", "be", "been", "being", "was", "were", "get", "gets", "got", "seems", "feels", "looks"]
)

# Stop words, and words that say nothing new about a subject (liking, naming, how much).
_STOP = STOPWORDS | frozenset(
    [
        "onto",
        "shall",
        "may",
        "might",
        "must",
        "mine",
        "us",
        "every",
        "really",
        "quite",
        "much",
        "many",
        "nowadays",
        "days",
        "longer",
        "anymore",
        "instead",
        "also",
        "well",
        "another",
        "user",
        "user's",
        "like",
        "likes",
        "liked",
        "love",
        "loves",
        "enjoy",
        "enjoys",
        "prefer",
        "prefers",
        "preferred",
        "rather",
        "better",
        "best",
        "fond",
        "named",
        "called",
    ]
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _stem(word: str) -> str:
    word = word.removesuffix("'s")
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "ed", "es", "s", "y"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """The stemmed words of ``text`` that carry content (no function words, no numbers)."""
    return {_stem(w) for w in _words(text) if w not in _STOP and not w.isdigit()}


def _same_word(a: str, b: str) -> bool:
    # Stems of one word family share a long prefix ("allergy", "allergic"; "teach", "teacher").
    return a == b or (len(a) >= 5 and len(b) >= 5 and a[:5] == b[:5])


def novel_words(new: str, old: str) -> list[str]:
    """Content words of ``new`` that ``old`` does not have (in any form)."""
    theirs = content_words(old)
    return sorted(w for w in content_words(new) if not any(_same_word(w, t) for t in theirs))


def numbers(text: str) -> set[str]:
    return set(_NUMBER.findall(text))


def change_word(text: str) -> str | None:
    """The word of change in ``text`` ("switched", "no longer" ...), else "now" or the like, else None."""
    lowered = text.lower().replace("’", "'")
    found = _CHANGE.search(lowered) or _NOW.search(lowered)
    return found.group(0) if found else None


def strong_change(word: str | None) -> bool:
    return word is not None and _NOW.fullmatch(word) is None


def addition_word(text: str) -> str | None:
    found = _ADDITION.search(text.lower().replace("’", "'"))
    return found.group(0) if found else None


def negated(text: str) -> bool:
    return _NEGATION.search(text.lower().replace("’", "'")) is not None


def past_occasion(text: str) -> bool:
    """Whether ``text`` tells of something that happened (true for good) rather than how things are."""
    lowered = text.lower().replace("’", "'")
    if _PAST_TIME.search(lowered):
        return True
    # The main verb of a short statement comes within its first words ("Sam visited ...",
    # "The user went ..."); a participle further on describes ("a dog named Rex").
    words = _words(lowered)[:MAIN_VERB_WINDOW]
    for i, word in enumerate(words):
        before = words[i - 1] if i else ""
        if before in _STATE_AUXILIARIES:
            continue
        if word in _IRREGULAR_PAST or (word.endswith("ed") and len(word) > 4 and before not in ("has", "have", "had")):
            return True
    return False


_CAPITALISED = re.compile(r"\b[A-Z][\w'’-]*")


def names_in_order(text: str) -> list[str]:
    """Capitalised words that are not common words, in order ("Wen coaches Tomas" -> wen, tomas)."""
    found = []
    for word in _CAPITALISED.findall(text):
        key = normalize(word.replace("’", "'").removesuffix("'s"))
        if key and key not in _COMMON and key not in found:
            found.append(key)
    return found


def same_roles(new: str, old: str) -> bool:
    """The names both texts share come in the same order: "Wen coaches Tomas" does not restate
    "Tomas is thankful for Wen's coaching", whatever their words."""
    a, b = names_in_order(new), names_in_order(old)
    shared = set(a) & set(b)
    return [n for n in a if n in shared] == [n for n in b if n in shared]


def shares_entity(a: Iterable[str], b: Iterable[str]) -> bool:
    """A shared entity, or neither side naming one."""
    mine = {normalize(e) for e in a} - {""}
    theirs = {normalize(e) for e in b} - {""}
    return bool(mine & theirs) or (not mine and not theirs)


def is_restatement(new: Candidate, old: Candidate, cosine: float) -> bool:
    """The new text says what the old one says, in other words, and nothing more."""
    return (
        cosine >= RESTATE_COSINE
        and not novel_words(new.text, old.text)
        and same_roles(new.text, old.text)
        and numbers(new.text) == numbers(old.text)
        and negated(new.text) == negated(old.text)
        and change_word(new.text) is None
        and addition_word(new.text) is None
    )


def decide(new: Candidate, old: Candidate, cosine: float) -> Decision:
    """Whether ``new`` replaces ``old``, restates it, or is a distinct memory beside it."""
    if new.type != old.type or new.type not in SUPERSEDING_TYPES:
        return Decision("distinct", "different type")
    if new.role != old.role:
        return Decision("distinct", "different role")
    if new.subject is not None and old.subject is not None:
        if new.subject != old.subject:
            return Decision("distinct", "different subject key")
        if is_restatement(new, old, cosine):
            return Decision("restate", f"restates it (subject '{new.subject}', cosine {cosine:.2f})")
        role = f" and role '{new.role}'" if new.role else ""
        return Decision("replace", f"same subject '{new.subject}'{role}, given by the client")
    if not shares_entity(new.entities, old.entities):
        return Decision("distinct", "about different entities")
    if is_restatement(new, old, cosine):
        return Decision("restate", f"restates it in other words (cosine {cosine:.2f})")
    change = change_word(new.text)
    if change is None:
        return Decision("distinct", "no word of change")
    addition = addition_word(new.text)
    if addition is not None:
        return Decision("distinct", f"'{addition}' adds to it rather than replacing it")
    if cosine < REPLACE_COSINE:
        return Decision("distinct", f"not close enough in meaning (cosine {cosine:.2f})")
    if not strong_change(change) and len(novel_words(new.text, old.text)) > NOW_NOVEL_WORDS:
        return Decision("distinct", f"'{change}' brings news beyond a changed value")
    if past_occasion(old.text):
        return Decision("distinct", "the older one tells of a past occasion, which stays true")
    return Decision("replace", f"says '{change}' about the same thing (cosine {cosine:.2f}, same entity or none)")


def old_rule(new: Candidate, old: Candidate, cosine: float) -> Decision:
    """The rule before issue 18, kept for the benchmark and the doctor's repair."""
    if new.type != old.type or new.type not in SUPERSEDING_TYPES or new.role != old.role:
        return Decision("distinct", "different type or role")
    if new.subject is not None and new.subject == old.subject:
        return Decision("replace", "same subject key")
    if cosine >= OLD_RULE_COSINE and shares_entity(new.entities, old.entities):
        return Decision("replace", f"cosine {cosine:.2f} and a shared entity")
    return Decision("distinct", "")
