"""The entities a text names, read with the English pipeline (``memory.language``, spaCy).

By shape: URLs, e-mail addresses, @handles, #tags and quoted titles ('Born to Run' is one
work). By the parse: spaCy's named entities (people, places, organisations, works, products;
dates, times, numbers and quantities are none), cut where they run over a verb or an "and",
without a title or kinship word ("Dr. Okafor" is Okafor, so the alias table links him to
Amara Okafor) or a command verb ("Send Marco" is Marco); capitalised words spaCy missed; a
sentence's first word only when it is no common English word or the parse shows a person
(the lemmatizer's word lists tell), or when the tagger still reads it as a proper noun written
in lower case ("Bruno is vegetarian"; not "Coffee is ready"); lower-case words the tagger reads
as proper nouns that are no English word ("tell yusuf", "marcus says"); short acronyms only where
used as names ("SAP cancelled the contract", "at UCLA"; not "the new API", "PDFs"); names the cube
already knows (``known``) in lower case, and in a batch the names its other texts name.
Each mention has its span and a kind (person, place, org, work, product, other).
The assistant may still pass ``entities`` itself: the client's names win (``memory.cube``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memory import language
from memory.stopwords import STOPWORDS

if TYPE_CHECKING:
    from spacy.tokens import Doc, Token

_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)
# Tried only where a run of address characters starts, so each run is read once: ``\b[\w.+-]+@...``
# read the rest of the run again from every word boundary in it (10 s on 32,000 characters of "1.1.", issue 26).
# ``_emails`` drops the run's leading punctuation, which ``\b`` used to skip.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]+(?:\.[\w-]+)+\b")
_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,38}[A-Za-z0-9_])?")
_HASHTAG = re.compile(r"(?<![\w#&])#[^\W\d_][\w-]{0,63}")
_QUOTED = re.compile(r"[\"“«]([^\"”»\n]{2,80})[\"”»]")
# A title in single quotes ('Born to Run'): the quote opens after a space and closes before one, so
# an apostrophe ("Maya's", "it's") never opens or closes it.
_SINGLE_QUOTED = re.compile(r"(?<![\w'’])['‘]([^'‘’\n]{2,80}?)['’](?![\w'’])")
_WORD = re.compile(r"[^\W_][\w'’-]*")
_SENTENCE_END = re.compile(r"[.!?:;]\s*$|^\s*$")

# Capitalised words that start sentences or stand alone without naming anything: the stop
# words but "don" (a name; the list has it for "don't"), and the words of chat and the calendar.
_COMMON = (STOPWORDS - {"don"}) | frozenset(
    [
        "i'm",
        "i've",
        "i'd",
        "i'll",
        "it's",
        "us",
        "yes",
        "also",
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
        "done",
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
_JOINERS = frozenset({"of", "de", "la", "van", "von", "der", "du", "da", "das", "do", "dos", "del", "della", "di", "des", "le"})


def normalize(name: str) -> str:
    """The lookup key of an entity: case-folded, accents and surrounding punctuation removed."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"\s+", " ", text).strip().strip(".,;:!?'\"()[]{}").casefold()
    if text.endswith("'s") or text.endswith("’s"):
        text = text[:-2]
    return text


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


# Titles and kinship words that stand before a name ("Dr. Okafor", "Aunt Rosa"): the entity is
# the name after them, so "Dr. Okafor", "Okafor" and "Amara Okafor" are one person in the graph
# (the alias table links a surname to the one full name that ends with it).
TITLES = frozenset(
    ["dr", "mr", "mrs", "ms", "mx", "miss", "prof", "professor", "sir", "dame", "rev", "fr", "capt", "captain", "coach"]
    + ["officer", "judge", "president", "senator", "doctor", "nurse", "madam", "madame", "mme", "mlle", "herr", "frau"]
    + ["ceo", "cfo", "cto", "coo", "cio", "vp", "svp", "evp", "gp", "md"]
)
KINSHIP = frozenset(
    ["aunt", "auntie", "aunty", "uncle", "grandma", "grandpa", "granny", "grandmother", "grandfather", "nana"]
    + ["nanna", "nonna", "nonno", "abuela", "abuelo", "cousin", "sister", "brother", "mom", "mum", "dad", "mama", "papa"]
)
# Words of time that are capitalised but name nothing one can link (spaCy tags most as DATE).
TIME_NAMES = frozenset(
    ["mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun", "jan", "feb", "mar", "apr", "jun", "jul"]
    + ["aug", "sep", "sept", "oct", "nov", "dec", "spring", "summer", "autumn", "fall", "winter", "weekend", "tonight"]
    + ["morning", "afternoon", "evening", "night", "noon", "midnight", "am", "pm", "q1", "q2", "q3", "q4", "h1", "h2"]
)
# Chat interjections, capitalised when they open a message ("Congrats!", "Bye Tomas").
_CHAT = frozenset(
    ["congrats", "congratulations", "bye", "goodbye", "yay", "wanna", "gonna", "gon", "lemme", "woohoo", "woah", "whoa"]
    + ["oof", "gotcha", "phew", "yall", "y'all", "haha", "hahaha", "lol", "omg", "btw", "aww", "aw", "ah", "ha", "hah"]
    + ["hmm", "yup", "yea", "ya", "ugh", "wow", "cheers", "kudos", "omw", "tbh", "imo", "fyi", "np", "ty", "thx"]
)
_NOT_NAMES = _COMMON | TIME_NAMES | TITLES | _CHAT
# spaCy's entity labels that name something one can link, and the kind each is.
KINDS = {
    "PERSON": "person",
    "GPE": "place",
    "LOC": "place",
    "FAC": "place",
    "ORG": "org",
    "WORK_OF_ART": "work",
    "PRODUCT": "product",
    "NORP": "other",
    "EVENT": "other",
    "LAW": "other",
    "LANGUAGE": "other",
}
# Verbs whose subject is a person: a name that spaCy calls an ORG before them is a person
# ("Elena moved to Barcelona", "Zoe says hi").
_PERSON_VERBS = frozenset(
    [
        "say",
        "tell",
        "ask",
        "move",
        "live",
        "prefer",
        "love",
        "like",
        "hate",
        "want",
        "need",
        "feel",
        "think",
        "know",
        "remember",
        "forget",
        "marry",
        "date",
        "visit",
        "call",
        "text",
        "email",
        "meet",
        "wish",
        "hope",
        "plan",
        "decide",
        "agree",
        "learn",
        "study",
        "graduate",
        "teach",
        "cook",
        "eat",
        "drink",
        "drive",
        "fly",
        "travel",
        "sleep",
        "laugh",
        "cry",
        "smile",
        "go",
        "come",
        "arrive",
        "leave",
        "return",
        "start",
        "join",
        "quit",
        "retire",
        "recommend",
        "suggest",
        "mention",
        "promise",
        "enjoy",
        "adopt",
        "turn",
        "grow",
        "celebrate",
        "write",
        "read",
        "sing",
        "dance",
        "play",
        "run",
        "walk",
        "swim",
        "hike",
        "paint",
        "bake",
        "miss",
    ]
)
_PERSON_NOUNS = KINSHIP | frozenset(
    [
        "friend",
        "mentor",
        "boss",
        "manager",
        "colleague",
        "coworker",
        "wife",
        "husband",
        "partner",
        "son",
        "daughter",
        "child",
        "kid",
        "mother",
        "father",
        "parent",
        "niece",
        "nephew",
        "roommate",
        "neighbor",
        "neighbour",
        "girlfriend",
        "boyfriend",
        "fiance",
        "fiancee",
        "teacher",
        "student",
        "therapist",
        "doctor",
        "dentist",
        "coach",
        "assistant",
        "intern",
        "report",
    ]
)


@dataclass(frozen=True)
class Mention:
    """One entity named in a text: its text as written (without a title), where it is, and its kind."""

    text: str
    start: int
    end: int
    kind: str  # person, place, org, work, product or other


def _quoted_titles(text: str) -> list[tuple[int, int]]:
    """Where quoted titles are: double quotes as before, single quotes only around a capitalised title."""
    spans = [m.span(1) for m in _QUOTED.finditer(text)]
    spans += [m.span(1) for m in _SINGLE_QUOTED.finditer(text) if _title_like(m.group(1))]
    return spans


def _title_like(inner: str) -> bool:
    words = inner.split()
    return bool(words) and len(words) <= 10 and inner[0].isupper() and not inner.rstrip().endswith((".", "!", "?", ","))


def _shape_mentions(text: str) -> tuple[list[Mention], str]:
    """URLs, e-mail addresses, handles, tags and quoted titles, and the text with them blanked."""
    found: list[Mention] = []
    masked = text
    for find in (_urls, _emails):
        pieces, last = [], 0
        for start, end in find(masked):
            name = masked[start:end].rstrip(".,;:")
            found.append(Mention(name, start, start + len(name), "other"))
            pieces += [masked[last:start], " " * (end - start)]
            last = end
        masked = "".join(pieces) + masked[last:]
    for pattern in (_HANDLE, _HASHTAG):
        for match in pattern.finditer(masked):
            found.append(Mention(match.group(0), match.start(), match.end(), "other"))
    pieces, last = [], 0
    for start, end in sorted(_quoted_titles(masked)):
        if start < last:
            continue
        inner = masked[start:end]
        lead = len(inner) - len(inner.lstrip())
        name = inner.strip()
        if name:
            found.append(Mention(name, start + lead, start + lead + len(name), "work"))
        pieces += [masked[last:start], " " * (end - start)]
        last = end
    masked = "".join(pieces) + masked[last:]
    return found, masked


def _starts_clause(token: Token) -> bool:
    """Whether a token opens a sentence or a line part (where every word is capitalised anyway)."""
    if token.is_sent_start or token.i == 0:
        return True
    before = token.doc[token.i - 1]
    # After a comma a capital is meaningful ("Good luck, Maya!"); after other punctuation it may just open a part.
    return before.is_space or (before.is_punct and before.text not in ("'", "’", "&", "-", ",")) or "\n" in before.whitespace_


def _is_capitalised(word: str) -> bool:
    """Title case ("Marco"), an acronym ("NASA") or an inner capital ("iPhone"); not "I" or "A"."""
    if not word[:1].isalpha() or len(word) == 1:
        return False
    return word[0].isupper() or (word[0].islower() and any(c.isupper() for c in word[1:3]))


def _is_acronym(word: str) -> bool:
    return word.isupper() or any(c.isdigit() for c in word)


def _plural_acronym(word: str) -> bool:
    """An acronym in the plural ("PDFs", "GPUs"): a kind of thing, not a name."""
    return len(word) > 2 and word.endswith("s") and word[:-1].isalpha() and word[:-1].isupper()


# Where an organisation or a place is: "at UCLA", "on KLM", "from IBM".
_PLACE_PREPOSITIONS = frozenset({"at", "on", "from", "via"})


def _short_acronym_named(token: Token) -> bool:
    """Whether a short acronym is used as a name ("SAP cancelled the contract", "at UCLA"), not as a
    thing ("the new API", "a hard V6", "SQL reports"): letters only, no modifier, and it does
    something or is where something is."""
    if not token.text.isalpha() or any(c.dep_ in ("amod", "nummod", "compound", "quantmod") for c in token.children):
        return False
    if token.dep_ in ("nsubj", "nsubjpass"):
        return token.head.pos_ == "VERB" and token.head.lemma_ != "be"
    return token.dep_ == "pobj" and token.head.lower_ in _PLACE_PREPOSITIONS


def _described(token: Token) -> bool:
    """Whether a word has an adjective or a number of its own ("the new API", "a hard V6"): a
    thing, where a short acronym names an organisation alone or with an article ("the BBC")."""
    return any(c.dep_ in ("amod", "nummod", "quantmod") for c in token.children)


# Job titles whose field follows "of" ("VP of Sales", "Head of Design"): the field is no name.
_ROLES = TITLES | frozenset(["head", "director", "chief", "lead", "manager", "dean", "chair", "editor", "minister"])


def _job_field(tokens: list[Token]) -> bool:
    """Whether these words are the field of a job title ("VP of Sales", "Head of Design"): a
    common noun after a role and "of", not an organisation."""
    doc = tokens[0].doc
    words = [t for t in tokens if not t.is_punct]
    if len(words) >= 3 and words[0].lower_.rstrip(".") in _ROLES and words[1].lower_ == "of":
        words = words[2:]
    elif words[0].i >= 2 and doc[words[0].i - 1].lower_ == "of" and doc[words[0].i - 2].lower_.rstrip(".") in _ROLES:
        pass
    else:
        return False
    return len(words) == 1 and words[0].lower_ in _word_lists()[2]


_LOWERED = "memcube.lowered"


def _proper_when_lowered(token: Token) -> bool:
    """Whether the tagger still reads a capitalised word that opens a sentence as a proper noun
    once it is written in lower case ("bruno is vegetarian": yes; "luggage arrived late", "budget
    is tight": no): the model's knowledge of the word itself, apart from the capital every first
    word has. One more tagging of the text (no parse), only for the words that need it."""
    doc = token.doc
    if not doc.has_annotation("TAG") or token.dep_ in ("compound", "amod", "nmod"):
        return False  # "Window seats": a modifier may read as a name in lower case too
    lowered = doc.user_data.get(_LOWERED)
    if lowered is None:
        text, pieces, last = doc.text, [], 0
        for t in doc:
            if _starts_clause(t) and t.text[:1].isupper() and not t.text.isupper():
                pieces += [text[last : t.idx], t.text[0].lower()]
                last = t.idx + 1
        lowered = language.tag("".join(pieces) + text[last:])
        doc.user_data[_LOWERED] = lowered
    span = lowered.char_span(token.idx, token.idx + len(token.text))
    return span is not None and len(span) == 1 and span[0].tag_ in ("NNP", "NNPS")


def _lower_case_name(token: Token) -> bool:
    """Whether a lower-case word is a name written as chat writes it ("marcus says", "tell yusuf"):
    the tagger reads it as a proper noun; it is no word of English (verb, adjective, adverb,
    plural: "new", "mid"), no stop, time, chat or role word, and it stands where a noun does,
    not as a modifier ("ginger beer") or in a foreign phrase ("pan de muerto"); in a sentence
    that capitalises its names, only in a person's place."""
    lower = token.lower_
    if not token.is_alpha or not token.text.islower() or len(lower) < 3 or token.tag_ not in ("NNP", "NNPS"):
        return False
    if not any(c in "aeiouy" for c in lower):
        return False  # "lgtm", "smh": chat's abbreviations
    if token.is_stop or lower in _NOT_NAMES or lower in LABELS or lower in _PERSON_NOUNS or lower in _JOINERS:
        return False
    if _dictionary_word(lower) or token.dep_ in ("compound", "amod", "advmod", "npadvmod", "nummod", "det"):
        return False
    before = token.doc[token.i - 1] if token.i > 0 else None
    if before is not None and before.lower_ in _JOINERS and before.text.islower():
        return False
    if not token.sent[0].text[:1].isupper():
        return True  # a sentence written in lower case, as chat is
    # A sentence that capitalises its names: only a word in a person's place ("with Ana and
    # bea", "dinner with bea", "bea says"), not a thing the tagger does not know ("tried kombucha").
    head = token.head
    return (
        token.dep_ == "poss"
        or (token.dep_ == "pobj" and head.lower_ == "with")
        or (token.dep_ == "conj" and (_is_capitalised(head.text) or head.lower_ in ("i", "me")))
        or (token.dep_ in ("nsubj", "nsubjpass") and head.lemma_.lower() in _PERSON_VERBS)
    )


def _capitalised_elsewhere(doc: Doc) -> set[str]:
    """Words written capitalised on their own inside a sentence ("I saw Paris"): names wherever they stand.
    A word of a longer capitalised name ("Cannon Beach") does not count."""
    found = set()
    for t in doc:
        if _is_capitalised(t.text) and not _starts_clause(t):
            before = doc[t.i - 1] if t.i > 0 else None
            after = doc[t.i + 1] if t.i + 1 < len(doc) else None
            if not any(n is not None and _is_capitalised(n.text) for n in (before, after)):
                found.add(t.text)
    return found


_lists: tuple[frozenset[str], frozenset[str], frozenset[str]] | None = None


def _word_lists() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """English verbs (with their irregular forms), adjectives and adverbs, and nouns (which hold
    some proper nouns too: "paris", "sofia"), from the lemmatizer's tables."""
    global _lists
    if _lists is None:
        lookups = language.pipeline().get_pipe("lemmatizer").lookups  # type: ignore[attr-defined]
        index, exceptions = lookups.get_table("lemma_index"), lookups.get_table("lemma_exc")
        _lists = (
            frozenset(index["verb"]) | frozenset(exceptions["verb"]),
            frozenset(index["adj"]) | frozenset(index["adv"]),
            frozenset(index["noun"]),
        )
    return _lists


def _verb_word(lower: str) -> bool:
    """Whether a word is an English verb or one of its forms ("schedule", "made", "hiked")."""
    verbs = _word_lists()[0]
    if lower in verbs:
        return True
    return lower.endswith("ed") and len(lower) > 4 and (lower[:-1] in verbs or lower[:-2] in verbs or lower[:-3] in verbs)


def _dictionary_word(lower: str) -> bool:
    """A verb (or its -ing form), adjective or adverb of English, or a plural noun: at a sentence's
    start it is more likely that than a name."""
    verbs, describing, nouns = _word_lists()
    if _verb_word(lower) or lower in describing:
        return True
    if lower.endswith("ing") and len(lower) > 5 and (lower[:-3] in verbs or lower[:-3] + "e" in verbs or lower[:-4] in verbs):
        return True
    if lower.endswith("ies") and lower[:-3] + "y" in nouns:
        return True
    return (
        lower.endswith("s")
        and not lower.endswith("ss")
        and (lower[:-1] in nouns or (lower.endswith("es") and lower[:-2] in nouns))
    )


def _has_own_verb(token: Token) -> bool:
    """Whether a name's last word is the subject of a finite verb ("Bill Gates called"): then its
    first word is part of the name, not a command ("Schedule Leo's laptop", "Call Marco")."""
    return token.dep_ in ("nsubj", "nsubjpass") and token.head.tag_ in ("VBD", "VBZ", "VBP", "MD")


def _finite_subject(token: Token) -> bool:
    """Whether a word is the subject of a finite verb, or of one with a finite auxiliary ("Rob is moving")."""
    head = token.head
    finite = ("VBD", "VBZ", "VBP", "MD")
    return token.dep_ in ("nsubj", "nsubjpass") and (
        head.tag_ in finite or any(c.dep_ in ("aux", "auxpass") and c.tag_ in finite for c in head.children)
    )


def _trim(tokens: list[Token], inner_capitals: set[str], known: Callable[[str], bool] | None = None) -> list[Token]:
    """A name's tokens without what only stands next to it: determiners, titles, a verb that opens
    the sentence ("Send Marco", "Hiked Mirror Lake", "Made Leo Fischer an offer"), ``'s``."""
    while tokens:
        first = tokens[0]
        lower = first.lower_.rstrip(".")
        opening = _starts_clause(first) and first.text not in inner_capitals and len(tokens) > 1
        if (
            first.is_punct
            or first.is_space
            or first.pos_ == "DET"
            or lower in ("the", "a", "an")
            or (len(tokens) > 1 and (lower in TITLES or lower in KINSHIP or lower in _NOT_NAMES))
        ):
            tokens = tokens[1:]
        elif _starts_clause(first) and first.pos_ == "VERB" and first.text not in inner_capitals:
            tokens = tokens[1:]  # "Learn Spanish": the verb is not part of the name
        elif opening and (lower in OPENERS or (lower.endswith("ed") and _verb_word(lower))):
            tokens = tokens[1:]
        elif (
            opening
            and _verb_word(lower)
            and not _has_own_verb(tokens[-1])
            and not (known is not None and known(normalize(" ".join(t.text for t in tokens))))
        ):
            tokens = tokens[1:]  # "Schedule Leo's laptop setup": a command, tagged as a name
        else:
            break
    while tokens and (tokens[-1].is_punct or tokens[-1].tag_ == "POS" or tokens[-1].lower_ in _JOINERS or tokens[-1].is_space):
        tokens = tokens[:-1]
    return tokens


def _names_something(tokens: list[Token]) -> bool:
    words = [t for t in tokens if not t.is_punct]
    if not words:
        return False
    if all(t.lower_.rstrip(".") in _NOT_NAMES or t.like_num for t in words):
        return False
    if len(words) == 1 and words[0].lower_ in KINSHIP:
        return False  # "Mom", "Dad": a role, not a name one can link
    if len(words) == 1 and _plural_acronym(words[0].text):
        return False
    if _job_field(words):
        return False
    return any(_is_capitalised(t.text) or t.text[:1].isdigit() for t in words)


def _person_evidence(tokens: list[Token], strong: bool = False) -> bool:
    """Cheap signs from the parse that a one-word name spaCy called an organisation is a person.
    ``strong``: only those no common word shows ("Store's going well" has a verb of a person too)."""
    token = tokens[-1]
    doc = token.doc
    if tokens[0].i > 0 and doc[tokens[0].i - 1].lower_.rstrip(".") in TITLES | KINSHIP:
        return True
    if not strong and token.dep_ in ("nsubj", "nsubjpass") and token.head.lemma_.lower() in _PERSON_VERBS:
        return True
    if (
        token.dep_ in ("nsubj", "nsubjpass")
        and token.pos_ == "PROPN"
        and token.head.pos_ == "VERB"
        and not _dictionary_word(token.lower_)
    ):
        return True  # a proper noun doing something: "Jonah works as ...", "Raj shared ..."
    if any(c.dep_ == "conj" and c.lower_ in ("i", "me", "we") for c in token.children):
        return True  # "Jonah and I"
    if token.dep_ in ("poss", "appos") and token.head.lemma_.lower() in _PERSON_NOUNS:
        return True
    if (
        token.dep_ == "nsubj"
        and token.head.lemma_ == "be"
        and any(c.dep_ == "attr" and c.lemma_.lower() in _PERSON_NOUNS for c in token.head.children)
    ):
        return True  # "Grace is Maya's mentor"
    following = doc[token.i + 1] if token.i + 1 < len(doc) else None
    if following is not None and following.text == "," and token.pos_ in ("PROPN", "NOUN") and len(tokens) == 1:
        return True  # addressed: "Maya, the bus is late again"
    return following is not None and following.text == ":" and _starts_clause(tokens[0])


def _extended(tokens: list[Token]) -> list[Token]:
    """A spaCy entity extended over the capitalised words right after it that it left out
    ("Slow" + "Horses"), and over a possessive that names a shop ("Joe" + "'s Pizza")."""
    doc = tokens[0].doc
    end = tokens[-1].i + 1
    while end < len(doc) and doc[end - 1].whitespace_ in ("", " ") and doc[end].ent_iob_ != "B":
        word = doc[end]
        if _is_capitalised(word.text) and not word.is_sent_start and word.lower_ not in _NOT_NAMES and doc[end - 1].whitespace_:
            end += 1
        elif word.tag_ == "POS" and not doc[end - 1].whitespace_ and end + 1 < len(doc) and _shop_word(doc[end + 1]):
            end += 2
        else:
            break
    return [*tokens, *doc[tokens[-1].i + 1 : end]]


def _shop_word(token: Token) -> bool:
    """A capitalised common noun after a possessive, naming a shop or a place ("Joe's Pizza",
    "Mario's Kitchen"), not a person's thing or relative ("Anna's Subaru", "Tom's Mom")."""
    lower = token.lower_
    return (
        _is_capitalised(token.text)
        and not token.is_sent_start
        and token.ent_iob_ != "B"
        and lower not in _NOT_NAMES
        and lower not in _PERSON_NOUNS
        and (lower in _word_lists()[2] or _dictionary_word(lower))
    )


def _model_number(token: Token) -> Token | None:
    """The model number right after a product's name ("Kindle 11", "iPhone 13"), not a count of
    what follows ("Nike 2 pairs")."""
    doc = token.doc
    if token.i + 1 >= len(doc) or token.whitespace_ != " ":
        return None
    number = doc[token.i + 1]
    if not (number.text.isdigit() and len(number.text) <= 3) or number.head.i > number.i:
        return None
    return number


def _span_mention(tokens: list[Token], kind: str) -> Mention:
    """The mention of these tokens, less trailing symbols a query's words never hold ("C++")."""
    doc = tokens[0].doc
    start, end = tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)
    text = doc.text[start:end].rstrip("+*-–—/")
    return Mention(text, start, start + len(text), kind)


def _pieces(tokens: list[Token], label: str) -> list[list[Token]]:
    """An entity span cut where it runs over a lower-case word that joins no name ("Dana manages Raj
    and Tobias", "Kachka with Sofia") and at "and" ("Luis and Carmen"), except in a title."""
    pieces: list[list[Token]] = [[]]
    work = label == "WORK_OF_ART"
    for token in tokens:
        lower = token.lower_
        breaks = (token.text[:1].islower() and lower not in _JOINERS and lower not in ("and", "&", "the", "'s", "’s")) or (
            not work and (lower == "and" or (label == "PERSON" and (lower == "&" or token.text == ",")))
        )
        if breaks:
            pieces.append([])
        else:
            pieces[-1].append(token)
    return [p for p in pieces if p]


def _doc_mentions(doc: Doc, blanked: set[int], known: Callable[[str], bool] | None) -> list[Mention]:
    """Names in a parsed text: spaCy's named entities, corrected by the parse, then capitalised words it missed."""
    found: list[Mention] = []
    used: set[int] = set(blanked)
    inner_capitals = _capitalised_elsewhere(doc)

    def knows(tokens: list[Token]) -> bool:
        return known is not None and known(normalize(" ".join(t.text for t in tokens)))

    for ent in doc.ents:
        if any(t.i in used for t in ent):
            continue
        if ent.label_ not in KINDS or (
            ent.label_ in ("NORP", "LANGUAGE")
            and all(t.pos_ == "ADJ" or t.dep_ == "amod" for t in ent)
            and not _is_capitalised(ent[-1].head.text)
        ):
            # Dates, times, numbers, money, quantities; "the French menu", "Thai food" (not a band's
            # "Japanese House"): no entity, and no fragment of one.
            used.update(t.i for t in ent)
            continue
        kept = False
        whole = _extended(list(ent))
        for piece in _pieces(whole, ent.label_):
            tokens = _trim(piece, inner_capitals, known)
            if not tokens or not _names_something(tokens):
                continue
            first = tokens[0]
            if (
                len(tokens) == 1
                and _starts_clause(first)
                and first.text not in inner_capitals
                and not knows(tokens)
                and not _first_word_is_name(first, ("PROPN", "NOUN", "X"))
            ):
                continue  # "Learn", "Glad", "Nature is healing": a sentence's first word that spaCy took for a name
            if (
                len(tokens) == 1
                and _is_acronym(first.text)
                and len(first.text) <= 3
                and (ent.label_ not in ("GPE", "LOC", "FAC") or not first.text.isalpha())
                and not knows(tokens)
                and _described(first)
            ):
                continue  # "the new API", "a hard V6": a thing, not an organisation
            kind = "org" if any(t.tag_ == "POS" for t in tokens) else KINDS[ent.label_]
            number = _model_number(tokens[-1])
            if number is not None and ent.label_ in ("ORG", "PRODUCT"):
                tokens, kind = [*tokens, number], "product"  # "Kindle 11": the model's number is the name's
                whole = [*whole, number] if number not in whole else whole
            if len(tokens) == 1 and kind != "person" and not _is_acronym(first.text) and _person_evidence(tokens):
                kind = "person"  # spaCy calls many a first name an organisation on a short text
            found.append(_span_mention(tokens, kind))
            kept = True
        if kept:
            used.update(t.i for t in whole)  # otherwise its words are read again below
    # Capitalised words spaCy did not tag: proper nouns anywhere, other words inside a sentence.
    run: list[Token] = []

    def flush() -> None:
        tokens = _trim(list(run), inner_capitals, known)
        run.clear()
        if not tokens or not _names_something(tokens):
            return
        first = tokens[0]
        following = doc[tokens[-1].i + 1] if tokens[-1].i + 1 < len(doc) else None
        if first.lower_ in LABELS and len(tokens) == 1:
            return
        short_acronym = len(tokens) == 1 and _is_acronym(first.text) and len(first.text) <= 3
        if short_acronym and not knows(tokens) and not _short_acronym_named(first):
            return  # "API", "QA", "V5": a short acronym spaCy did not call an organisation names no one here
        if _starts_clause(first) and len(tokens) == 1 and not knows(tokens) and first.text not in inner_capitals:
            speaker = following is not None and following.text == ":" and first.lower_ not in LABELS
            if not (speaker or _first_word_is_name(first, ("PROPN",))):
                return
        kind = "other" if len(tokens) > 1 else "person"
        number = _model_number(tokens[-1])
        if number is not None:
            tokens, kind = [*tokens, number], "product"  # "Pixel 9", "iPhone 13": a model's number is its name's
        found.append(_span_mention(tokens, kind))

    for token in doc:
        if token.i in used or token.is_space:
            flush()
            continue
        word = token.text
        if _is_capitalised(word) and word.lower().rstrip(".") not in _NOT_NAMES:
            if run and (token.is_sent_start or (doc[token.i - 1].is_punct and doc[token.i - 1].tag_ != "POS")):
                flush()
            run.append(token)
        elif run and token.lower_ in _JOINERS and token.i + 1 < len(doc) and _is_capitalised(doc[token.i + 1].text):
            run.append(token)
        elif run and token.tag_ == "POS" and token.i + 1 < len(doc) and _is_capitalised(doc[token.i + 1].text):
            run.append(token)  # "Powell's Books"
        else:
            flush()
            if _lower_case_name(token):
                found.append(_span_mention([token], KINDS.get(token.ent_type_, "person")))
                used.add(token.i)
    flush()
    if known is not None:
        found += _known_mentions(doc, used, found, known)
    people = {normalize(m.text) for m in found if m.kind == "person"}
    return [Mention(m.text, m.start, m.end, "person") if normalize(m.text) in people else m for m in found]


def _first_word_is_name(token: Token, name_tags: tuple[str, ...]) -> bool:
    """Whether a capitalised word that opens a sentence is a name. A word English has otherwise (a
    verb, adjective, adverb, plural, noun or interjection: "Glad", "Nature", "Congrats") is one only
    with the parse's evidence of a person ("Sofia joined ...", "Grace is Maya's mentor"); a word it
    lacks ("Felix", "Zoe") is one when spaCy tags it a noun. A noun of English that is a name too
    ("Anna", "Grace"; not "Budget") is one when the tagger reads it as a proper noun in lower
    case as well; so is a word it lacks that the tagger misread (a name tagged an adverb). An
    acronym doing something is a name whatever word its letters spell ("ACE refunded the deposit")."""
    lower = token.lower_
    if token.text.isupper() and len(token.text) > 1 and _short_acronym_named(token):
        return True
    if token.pos_ == "INTJ" or lower in _CHAT:
        return _person_evidence([token], strong=True)
    if _dictionary_word(lower):
        # "Mark is in Berlin", "Jack fixed the sink" (not "Mark the invoices", "Frank feedback"):
        # a person by the entity tagger, the subject of a finite verb, a name in lower case too.
        return _person_evidence([token], strong=True) or (
            token.ent_type_ == "PERSON" and _finite_subject(token) and _proper_when_lowered(token)
        )
    if lower in _word_lists()[2]:
        return _person_evidence([token]) or _proper_when_lowered(token)
    return (
        token.pos_ in name_tags or (token.pos_ in ("NOUN", "ADV", "X") and token.ent_type_ != "") or _proper_when_lowered(token)
    )


def _name_use(token: Token) -> bool:
    """Whether a single lower-case word is used as a name ("bea says", "with sof"), not as a common
    word that a known name contains ("the new clinic", "passport application", "paper books").
    A known name that is no word of English ("sigrid", "astrid") is one whatever the tagger made of it."""
    if token.is_stop:
        return False
    if token.is_alpha and not _dictionary_word(token.lower_) and token.lower_ not in _word_lists()[2]:
        return True
    if token.pos_ not in ("PROPN", "NOUN", "X", "INTJ"):
        return False
    if token.pos_ == "PROPN" and _dictionary_word(token.lower_) and token.dep_ in ("amod", "advmod", "compound", "acomp"):
        return False  # "the new booking form", tagged a proper noun: not "New" of "New Seasons"
    if token.pos_ == "PROPN" or not token.doc.has_annotation("DEP"):
        return True
    if token.dep_ == "compound" or any(c.dep_ in ("det", "amod", "poss", "compound", "nummod") for c in token.children):
        return False
    return not _dictionary_word(token.lower_) and token.lower_ not in _word_lists()[2]  # "sof", "bea"; not "art"


def _known_mentions(doc: Doc, used: set[int], found: list[Mention], known: Callable[[str], bool]) -> list[Mention]:
    """Names the cube already knows, written in lower case ("bea says ..."), up to three words long."""
    taken = [(m.start, m.end) for m in found]
    extra: list[Mention] = []
    index = 0
    while index < len(doc):
        matched = 0
        for size in (3, 2, 1):
            tokens = doc[index : index + size]
            if len(tokens) < size or any(t.i in used or t.is_punct or t.is_space for t in tokens):
                continue
            if size == 1 and not _name_use(tokens[0]):
                continue
            key = normalize(tokens.text)
            if len(key) < 2 or key in _NOT_NAMES or key in LABELS or not known(key):
                continue
            start, end = tokens.start_char, tokens.end_char
            if any(s < end and start < e for s, e in taken):
                continue
            extra.append(Mention(doc.text[start:end], start, end, "other"))
            matched = size
            break
        index += matched or 1
    return extra


def mentions_in(doc: Doc, known: Callable[[str], bool] | None = None) -> list[Mention]:
    """The entities a parsed text names, in order (see ``extract_mentions``)."""
    shaped, masked = _shape_mentions(doc.text)
    blanked = {t.i for t in doc if masked[t.idx : t.idx + len(t.text)].strip() == "" and t.text.strip()}
    found = shaped + _doc_mentions(doc, blanked, known)
    return sorted(found, key=lambda m: (m.start, -m.end))


def _parsed_length(text: str) -> int:
    """How much of a text the whole pipeline reads (``language.parsed_length``); the rest is read by shape."""
    return language.parsed_length(text)


def _tail_mentions(text: str, offset: int, known: Callable[[str], bool] | None) -> list[Mention]:
    """Names in the part of a long text past what is parsed: tokenised only (fast), read by shape."""
    if offset >= len(text) or not text[offset:].strip():
        return []
    doc = language.pipeline().make_doc(text[offset:])
    return [Mention(m.text, m.start + offset, m.end + offset, m.kind) for m in mentions_in(doc, known)]


# A heading path's separators ("Bob › Hobbies: ...", what the Markdown importer writes) read as
# the colon that ends a label, so its head is taken as the label's name; same length, same spans.
_PATH_MARKS = str.maketrans({"›": ":", "»": ":"})


def _as_parsed(text: str) -> str:
    return text.translate(_PATH_MARKS)


def extract_mentions(text: str, known: Callable[[str], bool] | None = None) -> list[Mention]:
    """Every entity mention in ``text`` with its span and kind, in order of appearance.

    ``known(key)`` tells whether the cube already knows a name (by its ``normalize`` key),
    so a known name is linked in lower case or at a sentence's start too.
    """
    if not text.strip():
        return []
    cut = _parsed_length(text)
    return mentions_in(language.parse(_as_parsed(text[:cut])), known) + _tail_mentions(text, cut, known)


def names_of(mentions: Iterable[Mention]) -> list[str]:
    """Distinct entity names of these mentions, in order of first appearance."""
    seen: set[str] = set()
    result: list[str] = []
    for mention in mentions:
        key = normalize(mention.text)
        if len(key) < 2 or key in seen or key in _COMMON:
            continue
        seen.add(key)
        result.append(mention.text)
    return result


def extract_entities(text: str, known: Callable[[str], bool] | None = None) -> list[str]:
    """Entity names found in ``text``, in order of first appearance, without duplicates."""
    return names_of(extract_mentions(text, known))


def extract_entities_many(texts: Sequence[str], known: Callable[[str], bool] | None = None) -> list[list[str]]:
    """``extract_entities`` of many texts, parsed in batches (what a batch add uses).

    Names found in one text of the batch count as known in the others, as they would had the
    texts been added one at a time ("Sven Olsen leads the data team" and "Sven prefers tea": the
    second Sven is linked, a first name or surname of a person as well as the whole name).
    """
    cuts = [_parsed_length(text) for text in texts]
    docs = language.parse_many(_as_parsed(text[:cut]) for text, cut in zip(texts, cuts, strict=True))

    def read(index: int, knows: Callable[[str], bool] | None) -> list[Mention]:
        text, cut, doc = texts[index], cuts[index], docs[index]
        return mentions_in(doc, knows) + _tail_mentions(text, cut, knows) if text.strip() else []

    found = [read(index, known) for index in range(len(texts))]
    own = [_learnt_keys(mentions) for mentions in found]
    learnt = set().union(*own) if own else set()

    def knows(key: str) -> bool:
        return key in learnt or (known is not None and known(key))

    for index, doc in enumerate(docs):
        # Read again only a text that holds a word of a name another text taught.
        taught = learnt - own[index]
        words = {normalize(token.text) for token in doc}
        if taught and (cuts[index] < len(texts[index]) or any(key.split()[0] in words for key in taught)):
            found[index] = read(index, knows)
    return [names_of(mentions) for mentions in found]


def _learnt_keys(mentions: Iterable[Mention]) -> set[str]:
    """The keys a text's names make known: each name's, and a person's first name and surname
    (as the cube's alias table links them: ``MemCube.knows_entity``)."""
    keys: set[str] = set()
    for mention in mentions:
        key = normalize(mention.text)
        if len(key) < 2 or key in _NOT_NAMES:
            continue
        keys.add(key)
        words = key.split()
        if mention.kind == "person" and len(words) > 1:
            keys.update(w for w in (words[0], words[-1]) if len(w) > 1 and w not in _NOT_NAMES)
    return keys


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
