"""Where an answer ends: the end of the model's turn, a new prompt header, or the answer repeating itself.

Small local models rarely stop on their own before the token budget: past the answer they
start another "Question:", or say the same line again and again. ``AnswerStop`` watches the
decoded text as tokens arrive and says when to stop and how much of the text to keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Stopped = Literal["end", "header", "repeat", "budget"]  # why an answer ended

# Special tokens that close a turn in the common chat templates (ChatML, Llama 3, Gemma, Phi, Mistral).
END_OF_TURN = ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>")
# Text that opens a new part of the prompt: the answer is over when the model starts one, or
# starts listing memory lines again ("\n[2] ...": the prompt numbers its memories).
_HEADER = re.compile(
    r"(?:^|\n)[ \t]*(?:Question|Memories|Memory|Example|Answer|User|Assistant|System|Human|Q)[ \t]*:"
    r"|\n[ \t]*\[\d{1,3}\]|<\|im_(?:start|end)\|>|<end_of_turn>",
    re.IGNORECASE,
)
REPEAT_WORDS = 8  # the same run of this many words twice: the answer is looping
# A question asking for one thing ("Where does Ana live?"): its answer is one sentence.
_ONE_THING = re.compile(r"^\s*(?:what|where|who|whom|whose|when|which|how)\b[^?]*\?\s*$", re.IGNORECASE)
_LIST_WORDS = re.compile(r"\b(?:and|all|every\w*|list|both|each)\b", re.IGNORECASE)
MIN_SENTENCE_WORDS = 3  # "Dr." or "1." repeating is no loop
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]+(?=\s)|[^\n]+\n")


@dataclass(frozen=True)
class Verdict:
    stop: bool
    keep: int  # characters of the text to keep
    reason: Stopped = "end"


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())


def asks_for_one_thing(question: str) -> bool:
    """One wh-question about one thing: no second question, no "and", "all", "both", "list"."""
    return bool(_ONE_THING.match(question)) and not _LIST_WORDS.search(question)


class AnswerStop:
    """Fed the whole decoded answer so far after each token; ``check`` says whether to stop, and where to cut.

    ``one_sentence``: the answer ends with its first complete sentence of a few words (a small
    model that has answered goes on to explain what it was not asked, and makes it up).
    """

    def __init__(self, repeat_words: int = REPEAT_WORDS, *, one_sentence: bool = False) -> None:
        self.repeat_words = repeat_words
        self.one_sentence = one_sentence
        self._grams: set[tuple[str, ...]] = set()
        self._checked = 0  # runs of words starting before this word are in _grams

    def check(self, text: str) -> Verdict:
        if (cut := self._header(text)) is not None:
            return Verdict(True, cut, "header")
        if self.one_sentence and (cut := self._first_sentence(text)) is not None:
            return Verdict(True, cut, "end")
        for cut in (self._repeated_sentence(text), self._repeated_words(text)):
            if cut is not None:
                # A loop can begin mid-sentence: keep whole sentences where there is one to keep.
                ends = [m.end() for m in _SENTENCE_END.finditer(text[:cut])]
                return Verdict(True, ends[-1] if ends else cut, "repeat")
        return Verdict(False, len(text))

    @staticmethod
    def _header(text: str) -> int | None:
        """Where a new prompt header starts after some answer (one before any answer, an echoed "Answer:", is not an end)."""
        for match in _HEADER.finditer(text):
            if text[: match.start()].strip() and not _HEADER.fullmatch(text[: match.start()].strip()):
                return match.start()
        return None

    @staticmethod
    def _first_sentence(text: str) -> int | None:
        """Where the first complete sentence of at least a few words ends ("Dr." or "1." is none)."""
        for match in _SENTENCE.finditer(text):
            if len(_norm(match.group()).split()) >= MIN_SENTENCE_WORDS:
                return match.end()
        return None

    @staticmethod
    def _repeated_sentence(text: str) -> int | None:
        """Where a complete sentence or line of a few words that says what an earlier one said starts."""
        seen: set[str] = set()
        for match in _SENTENCE.finditer(text):
            said = _norm(match.group())
            if len(said.split()) < MIN_SENTENCE_WORDS:
                continue
            if said in seen:
                return match.start()
            seen.add(said)
        return None

    def _repeated_words(self, text: str) -> int | None:
        """Where a run of ``repeat_words`` words that came before starts again.

        The text grows between calls and only its last word may still change, so each run is
        checked once, when its last word is complete: the first repeat is caught where it
        begins, and what is kept is the text up to the second copy (the first one whole).
        """
        words = [(m.start(), _norm(m.group())) for m in _WORD.finditer(text)]
        complete = len(words) if text[-1:].isspace() else len(words) - 1
        n = self.repeat_words
        for start in range(self._checked, complete - n + 1):
            run = tuple(w for _, w in words[start : start + n])
            if run in self._grams:
                return words[start][0]
            self._grams.add(run)
            self._checked = start + 1
        return None
