"""A cheap local pass that finds entities in text without a language model.

It finds what can be found reliably by shape: proper names (runs of capitalised words
that are not just the first word of a sentence), @handles, #tags, URLs, e-mail addresses
and quoted titles. The assistant is the smart extractor (it passes ``entities`` and
``relations`` itself); this pass makes sure a memory saved without them is still linked.
"""

from __future__ import annotations

import re
import unicodedata

_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)
# Tried only where a run of address characters starts, so each run is read once: ``\b[\w.+-]+@...``
# read the rest of the run again from every word boundary in it (10 s on 32,000 characters of "1.1.", issue 26).
# ``_emails`` drops the run's leading punctuation, which ``\b`` used to skip.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]+(?:\.[\w-]+)+\b")
_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,38}[A-Za-z0-9_])?")
_HASHTAG = re.compile(r"(?<![\w#&])#[^\W\d_][\w-]{0,63}")
_QUOTED = re.compile(r"[\"“«]([^\"”»\n]{2,80})[\"”»]")
_WORD = re.compile(r"[^\W_][\w'’-]*")
_SENTENCE_END = re.compile(r"[.!?:;]\s*$|^\s*$")

# Capitalised words that start sentences or stand alone without naming anything.
_COMMON = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "i'm",
        "i've",
        "i'd",
        "i'll",
        "it",
        "it's",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "he",
        "she",
        "we",
        "they",
        "you",
        "your",
        "my",
        "our",
        "his",
        "her",
        "their",
        "me",
        "us",
        "them",
        "what",
        "when",
        "where",
        "who",
        "why",
        "how",
        "which",
        "yes",
        "no",
        "not",
        "and",
        "or",
        "but",
        "so",
        "if",
        "then",
        "also",
        "just",
        "oh",
        "ok",
        "okay",
        "hey",
        "hi",
        "hello",
        "thanks",
        "thank",
        "wow",
        "yeah",
        "yep",
        "nope",
        "well",
        "sure",
        "great",
        "good",
        "nice",
        "cool",
        "awesome",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "today",
        "tomorrow",
        "yesterday",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "mr",
        "mrs",
        "ms",
        "dr",
        "by",
        "for",
        "from",
        "in",
        "on",
        "at",
        "to",
        "of",
        "with",
        "as",
        "is",
        "was",
        "be",
        "been",
        "are",
        "were",
        "do",
        "did",
        "does",
        "done",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "might",
        "must",
        "let",
        "lets",
        "let's",
        "please",
        "sorry",
        "absolutely",
        "definitely",
        "really",
        "totally",
    ]
)
# Words that label a line ("Goal: run a half marathon", "Note: ..."): before a colon at the
# start of a sentence they are a heading, not a speaker or a name.
LABELS = frozenset(
    [
        "goal",
        "goals",
        "note",
        "notes",
        "task",
        "tasks",
        "todo",
        "to-do",
        "reminder",
        "idea",
        "ideas",
        "update",
        "fyi",
        "summary",
        "decision",
        "decisions",
        "question",
        "answer",
        "action",
        "actions",
        "meeting",
        "agenda",
        "tip",
        "warning",
        "important",
        "pros",
        "cons",
        "re",
        "subject",
        "ps",
        "status",
        "next",
        "done",
        "standup",
        "retro",
        "minutes",
        "result",
        "results",
        "outcome",
        "problem",
        "issue",
        "fix",
        "plan",
        "context",
        "background",
        "follow-up",
        "followup",
        "deadline",
        "due",
        "priority",
    ]
)
# Verbs that open a sentence about someone ("Met Priya for lunch", "Call Marco"):
# before a name they start the sentence, they are not the first part of the name.
OPENERS = frozenset(
    [
        "met",
        "meet",
        "call",
        "called",
        "calling",
        "email",
        "emailed",
        "emailing",
        "ask",
        "asked",
        "tell",
        "told",
        "thank",
        "thanked",
        "remind",
        "reminded",
        "ping",
        "pinged",
        "visit",
        "visited",
        "help",
        "helped",
        "saw",
        "text",
        "texted",
        "message",
        "messaged",
        "invite",
        "invited",
        "chat",
        "chatted",
        "talk",
        "talked",
        "spoke",
        "phone",
        "phoned",
        "reviewed",
        "synced",
    ]
)
# Name joiners that may sit inside a multi-word proper name ("Bank of America").
_JOINERS = frozenset({"of", "de", "la", "van", "von", "der", "du", "da"})


def normalize(name: str) -> str:
    """The lookup key of an entity: case-folded, accents and surrounding punctuation removed."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"\s+", " ", text).strip().strip(".,;:!?'\"()[]{}").casefold()
    if text.endswith("'s") or text.endswith("’s"):
        text = text[:-2]
    return text


def _proper_names(text: str) -> list[str]:
    names: list[str] = []
    # Words seen capitalised inside a sentence are names wherever they stand.
    inner_capitals = {
        m.group(0)
        for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", text)
        for m in list(_WORD.finditer(sentence))[1:]
        if m.group(0)[0].isupper()
    }
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", text):
        words = list(_WORD.finditer(sentence))
        run: list[str] = []

        def flush() -> None:
            while run and run[-1].lower() in _JOINERS:
                run.pop()
            if run:
                names.append(" ".join(run))
            run.clear()

        for index, match in enumerate(words):
            word = match.group(0)
            # Punctuation ends a name: "Caroline: Glad you came" names Caroline, not "Caroline Glad".
            if run and index > 0 and sentence[words[index - 1].end() : match.start()].strip():
                flush()
            lower = word.lower().rstrip("'’s") if word.lower().endswith(("'s", "’s")) else word.lower()
            is_cap = (word[0].isupper() and not word.isupper()) or (word.isupper() and len(word) > 1 and word.isalpha())
            if run and lower in _JOINERS:
                run.append(word)
                continue
            if is_cap and lower not in _COMMON:
                # The first word of a sentence is capitalised anyway: keep it only when
                # the next word continues the name ("New York") or it is an acronym.
                # A name also stands first when it is addressed or speaks ("Mel, ...", "Mel: ...")
                # or appears capitalised elsewhere in the text.
                if index == 0 and lower in LABELS and sentence[match.end() :].lstrip().startswith(":"):
                    continue
                if index == 0 and lower in OPENERS and word not in inner_capitals:
                    continue
                if index == 0 and not word.isupper():
                    following = words[index + 1].group(0) if index + 1 < len(words) else ""
                    between = sentence[match.end() : match.end() + 1]
                    if not (following and following[0].isupper()) and between not in (",", ":") and word not in inner_capitals:
                        continue
                run.append(re.sub(r"['’]s$", "", word))
            else:
                flush()
        flush()
    return names


def _urls(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in _URL.finditer(text)]


def _emails(text: str) -> list[tuple[int, int]]:
    """Where the e-mail addresses are: each starts at the first word character of its run."""
    spans = []
    for match in _EMAIL.finditer(text):
        start, end = match.span()
        start += len(match.group(0)) - len(match.group(0).lstrip(".+-"))
        if text[start] != "@":
            spans.append((start, end))
    return spans


def extract_entities(text: str) -> list[str]:
    """Entity names found in ``text``, in order of first appearance, without duplicates."""
    found: list[tuple[int, str]] = []
    masked = text
    for find in (_urls, _emails):
        pieces, last = [], 0
        for start, end in find(masked):
            found.append((start, masked[start:end].rstrip(".,;:")))
            pieces += [masked[last:start], " " * (end - start)]
            last = end
        masked = "".join(pieces) + masked[last:]
    for pattern in (_HANDLE, _HASHTAG):
        for match in pattern.finditer(masked):
            found.append((match.start(), match.group(0)))
    for match in _QUOTED.finditer(masked):
        found.append((match.start(1), match.group(1).strip()))
    quoted = [normalize(m.group(1)) for m in _QUOTED.finditer(masked)]
    for name in _proper_names(masked):
        if any(normalize(name) in title for title in quoted):
            continue
        found.append((masked.find(name), name))
    seen: set[str] = set()
    result: list[str] = []
    for _, name in sorted(found, key=lambda item: item[0]):
        key = normalize(name)
        if len(key) < 2 or key in seen or key in _COMMON:
            continue
        seen.add(key)
        result.append(name)
    return result


def query_keys(query: str, max_words: int = 4) -> set[str]:
    """Every normalised word n-gram of a query, to match against known entity names.

    Matching n-grams rather than capitalised runs lets "what does alice like" find Alice.
    """
    words = [normalize(w.group(0)) for w in _WORD.finditer(query)]
    words = [w for w in words if w]
    keys: set[str] = set()
    for size in range(1, max_words + 1):
        for start in range(0, len(words) - size + 1):
            gram = " ".join(words[start : start + size])
            if size == 1 and gram in _COMMON:
                continue
            keys.add(gram)
    for token in re.findall(r"[@#][\w.-]+", query):
        keys.add(normalize(token))
    return keys
