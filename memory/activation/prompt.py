"""How memories and a question become tokens, so that a cache of the first is a prefix of the whole.

Each piece (the head, each memory line, the question with the chat template's closing) is
tokenized on its own and the ids are concatenated: the ids of "head + memories" are then
exactly a prefix of the ids of "head + memories + question", which is what lets a stored
cache stand in for reading the memories again.
"""

from __future__ import annotations

import hashlib

from memory.activation.base import Backend
from memory.models import Memory

TEMPLATE_VERSION = "memcube-ask/2"
INSTRUCTION = (
    "You answer questions from the user's memories listed below, in one short sentence, from the memory "
    "about the person and the thing asked. Cite the number of the memory you use in square brackets. If "
    "the memories do not hold the answer, say so.\n\n"
    "Example:\n[1] Sam's dog is called Rex\n[2] Ana works as a teacher\n[3] Sam plays tennis on Fridays\n"
    "Question: What is Ana's job?\nAnswer: Ana works as a teacher [2].\n\nMemories:\n"
)
PLAIN = "\x00CONTEXT\x00\nQuestion: \x00QUESTION\x00\nAnswer:"


def memory_line(memory: Memory, number: int) -> str:
    """The memory as the prompt's ``number``-th line (from 1). A number, not the memory's id: an id is
    random letters that a small model reads as content (SmolLM2-135M's answer to the same question
    over the same memories changed with fresh ids), and it costs a dozen tokens a line. The answer's
    [n] is mapped back to the id (``citations.checked_citations``)."""
    when = f" ({memory.occurred_at[:10]})" if memory.occurred_at else ""
    return f"[{number}]{when} {memory.text}\n"


class PromptTemplate:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        rendered = backend.chat_template() or PLAIN
        head, rest = rendered.split("\x00CONTEXT\x00", 1)
        middle, tail = rest.split("\x00QUESTION\x00", 1)
        self.head, self.middle, self.tail = head + INSTRUCTION, middle, tail
        digest = hashlib.sha256("\x00".join((self.head, self.middle, self.tail)).encode()).hexdigest()[:12]
        self.version = f"{TEMPLATE_VERSION}:{digest}"

    def head_tokens(self) -> list[int]:
        return self._backend.encode(self.head)

    def memory_tokens(self, memory: Memory, number: int) -> list[int]:
        """The tokens of ``memory`` as the prompt's ``number``-th line: a line's tokens depend only on
        its place, so a cache of the first k lines is still a prefix of any prompt that starts with them."""
        return self._backend.encode(memory_line(memory, number))

    def question_tokens(self, question: str) -> list[int]:
        return self._backend.encode(self.middle + question + self.tail)
