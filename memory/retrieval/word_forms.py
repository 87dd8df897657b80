"""A word's other forms, for the keyword stages: "try" finds "tried", "send" finds "sent".

FTS5's porter stemmer folds the regular endings ("meetings" and "meeting", "stopped" and
"stop") but not the irregular forms ("sent", "went", "ran", "said", "bought", "children")
nor a "y" turned "i" ("tried" stems to "tri", "try" to "try"): "which restaurant did I try"
missed "Tried the new ramen place". The forms come from the exception tables of spaCy's
English lemmatizer (en_core_web_sm, installed with the project, ``memory.language``): each
irregular form with its lemma, about 6,000 in all. They are read once, on first use, from the
model's files (about 0.3 s; the pipeline itself is not loaded).

A form that is the word with letters added ("running" for "run") is left out: the stemmer
already folds it, and matching it twice would count the word twice.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterable
from pathlib import Path

from memory.language import MODEL_PACKAGE

MAX_TERMS = 48  # a keyword query's words and forms together

_lock = threading.Lock()
_tables: tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]] | None = None


def _lookups_file() -> Path | None:
    """The lemmatizer's lookups of the installed model package (found without importing it: that imports spaCy)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/lemmatizer/lookups/lookups.bin"))
        if found:
            return found[0]
    return None


def _load() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(irregular form -> its lemmas, lemma -> its irregular forms); empty when the model is missing."""
    path = _lookups_file()
    if path is None:
        return {}, {}
    import srsly  # spaCy's serialisation library, installed with it

    tables = srsly.msgpack_loads(path.read_bytes())
    lemmas: dict[str, set[str]] = {}
    forms: dict[str, set[str]] = {}
    # One table per part of speech (verb, noun, adjective, adverb), keyed by its hashed name.
    for by_pos in tables.get("lemma_exc", {}).values():
        for form, its in by_pos.items():
            for lemma in its:
                if lemma != form and lemma.isalpha() and form.isalpha():
                    lemmas.setdefault(form, set()).add(lemma)
                    forms.setdefault(lemma, set()).add(form)
    return {k: tuple(sorted(v)) for k, v in lemmas.items()}, {k: tuple(sorted(v)) for k, v in forms.items()}


def tables() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """The exception tables, read on first use (thread-safe)."""
    global _tables
    if _tables is None:
        with _lock:
            if _tables is None:
                _tables = _load()
    return _tables


def forms_of(word: str) -> list[str]:
    """``word``'s other forms the stemmer does not fold into it: "send" -> ["sent"], "went" -> ["go", "gone"]."""
    lemma_of, forms = tables()
    family: list[str] = []
    for lemma in (word, *lemma_of.get(word, ())):
        family.extend([lemma, *forms.get(lemma, ())])
    out: list[str] = []
    for form in dict.fromkeys(family):
        if form == word or any(form.startswith(kept) for kept in (word, *out)):
            continue  # the word itself, or a form the stemmer folds into one already matched
        out.append(form)
    return out


def with_forms(words: Iterable[str]) -> list[str]:
    """``words`` each followed by its other forms, once each, ``MAX_TERMS`` at most."""
    out: dict[str, None] = {}
    for word in words:
        for term in (word, *forms_of(word)):
            if len(out) >= MAX_TERMS:
                return list(out)
            out.setdefault(term, None)
    return list(out)
