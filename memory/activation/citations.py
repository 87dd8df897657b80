"""Which memories an answer uses: the [n] markers it writes (checked), and the memories its content comes from.

The prompt shows each memory with its id and asks the model to cite the ids it uses; an id
the answer writes counts only when the prompt held that memory (others are taken out of the
text). Small local models rarely write one, so the answer is also attributed by its content:
the words, names, numbers and dates it says that the question did not (lemmas, from the shared
spaCy pipeline), each weighted by how few of the prompt's memories hold it. Memories are taken
greedily, the one explaining most of what is still unexplained first, while one still adds
something specific: a word at most half of the memories hold that can be an answer on its own
(a noun, a name, a number or date, an adjective), or two such words of any kind. A memory that
shares only what most memories say, only the question's words, a single verb, or words about
the memories themselves ("the memories do not mention it") is not cited.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memory import language
from memory.models import Memory

if TYPE_CHECKING:
    from spacy.tokens import Doc, Token

# Citations as an answer writes them: the prompt's line numbers in brackets (one or a list), or
# memory ids, in brackets or bare in the text (an assistant may quote one from an earlier result).
_CITATION = re.compile(
    r"\[\s*(?P<numbered>\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*\]"
    r"|\[\s*(?P<listed>mem_[0-9a-z]+(?:\s*[,;]\s*mem_[0-9a-z]+)*)\s*\]|\b(?P<bare>mem_[0-9a-z]+)\b",
    re.IGNORECASE,
)
_CONTENT_POS = {"NOUN", "PROPN", "VERB", "ADJ", "ADV", "NUM", "X"}
_ON_ITS_OWN = {"NOUN", "PROPN", "NUM", "ADJ", "X"}  # a word that alone can be an answer ("Pickle", "vegetarian")
# Words of answers about the memories themselves ("the memories do not mention it"), never their content.
_META = {"memory", "answer", "question", "information", "mention", "know", "context", "user", "say", "provide", "detail"}
_MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_MONTH_KEYS = {m: m for m in _MONTHS} | {m[:3]: m for m in _MONTHS} | {"sept": "september"}
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    )
}
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")


def checked_citations(answer: str, context_ids: Sequence[str]) -> tuple[str, list[str]]:
    """The answer with its citations checked, and the memories it cites, in order of first mention.

    ``context_ids``: the prompt's memories in the order of its lines, [1] first. A line number the
    answer writes counts when the prompt had that line, and is written back as the memory's id; a
    memory id counts when the prompt held that memory (any letter case; written back as stored).
    Others (made up, out of range, the instruction's example) are taken out of the text with their
    brackets.
    """
    known = {i.lower(): i for i in context_ids} | {str(n): i for n, i in enumerate(context_ids, start=1)}
    named: list[str] = []

    def check(match: re.Match[str]) -> str:
        listed = match.group("numbered") or match.group("listed")
        written = re.split(r"\s*[,;]\s*", listed) if listed else [match.group("bare")]
        keys = [w.lstrip("0") if w.isdigit() else w.lower() for w in written]
        valid = [known[k] for k in keys if k in known]
        named.extend(valid)
        if not valid:
            return ""
        return f"[{', '.join(dict.fromkeys(valid))}]" if listed else valid[0]

    text = _CITATION.sub(check, answer)
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip(), list(dict.fromkeys(named))


def _key(token: Token) -> list[str]:
    """The comparable forms of one spaCy token: a lower-case lemma, a number's digits, a month's name."""
    text = token.text.lower()
    if text in _MONTH_KEYS and (token.pos_ == "PROPN" or text != "may"):
        return [_MONTH_KEYS[text]]
    if any(ch.isdigit() for ch in text):
        parts = [_ORDINAL.sub(r"\1", p) for p in re.split(r"[^0-9a-z]+", text) if p]
        return [p.lstrip("0") or "0" if p.isdigit() else p for p in parts]
    if text in _NUMBER_WORDS:
        return [_NUMBER_WORDS[text]]
    if token.is_stop or token.is_punct or token.is_space or token.pos_ not in _CONTENT_POS:
        return []
    lemma = token.lemma_.lower()
    return [lemma] if any(ch.isalnum() for ch in lemma) else []


Keys = tuple[frozenset[str], frozenset[str]]  # a text's content keys, and those that can be an answer alone
_seen: OrderedDict[str, Keys] = OrderedDict()  # text -> its keys: the warm memories recur in every answer
_seen_lock = threading.Lock()
SEEN_TEXTS = 4096


def _keys_of(doc: Doc) -> Keys:
    keys: set[str] = set()
    alone: set[str] = set()
    for token in doc:
        found = _key(token)
        keys.update(found)
        if token.pos_ in _ON_ITS_OWN or token.ent_type_ or token.like_num or any(ch.isdigit() for ch in token.text):
            alone.update(found)
    return frozenset(keys), frozenset(alone | (keys & set(_MONTHS)))


def contents(texts: Sequence[str]) -> list[Keys]:
    """The content keys of each text, and which of them can be an answer alone (new texts parsed in one batch)."""
    with _seen_lock:
        new = list(dict.fromkeys(t for t in texts if t not in _seen))
    parsed = {t: _keys_of(doc) for t, doc in zip(new, language.parse_many(new), strict=True)}
    with _seen_lock:
        for text, keys in parsed.items():
            _seen[text] = keys
        out = [parsed.get(t) or _seen[t] for t in texts]
        for text in texts:
            if text in _seen:
                _seen.move_to_end(text)
        while len(_seen) > SEEN_TEXTS:
            _seen.popitem(last=False)
    return out


def _date_keys(memory: Memory) -> set[str]:
    if not memory.occurred_at or len(memory.occurred_at) < 10:
        return set()
    year, month, day = memory.occurred_at[:4], int(memory.occurred_at[5:7]), int(memory.occurred_at[8:10])
    return {year.lstrip("0") or "0", _MONTHS[month - 1], str(day)} if 1 <= month <= 12 else {year}


def attribute(answer: str, question: str, memories: Sequence[Memory]) -> list[str]:
    """The ids of the memories the answer's content comes from (``memories`` in order of preference)."""
    if not memories or not answer.strip():
        return []
    (answer_keys, alone), (question_keys, _), *texts = contents([answer, question, *(m.text for m in memories)])
    said = answer_keys - question_keys - _META
    if not said:
        return []
    holds = [keys | _date_keys(m) for (keys, _), m in zip(texts, memories, strict=True)]
    df = {k: sum(k in h for h in holds) for k in said}
    specific = max(1, len(memories) // 2)
    weight = {k: math.log((len(memories) + 1) / n) for k, n in df.items() if 0 < n <= specific}
    chosen: list[int] = []
    explained: set[str] = set()
    while True:
        best, best_gain = -1, 0.0
        for i, h in enumerate(holds):
            new = (h & weight.keys()) - explained
            # Something specific: a word that can be an answer alone (not a verb), or two words together (one verb is chance).
            if i in chosen or not (new & alone or len(new) >= 2):
                continue
            gain = sum(weight[k] for k in new)
            if gain > best_gain:
                best, best_gain = i, gain
        if best < 0:
            break
        chosen.append(best)
        explained |= holds[best] & weight.keys()
    return [memories[i].id for i in sorted(chosen)]
