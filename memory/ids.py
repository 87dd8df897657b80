"""Memory ids: ``mem_`` plus a ULID (time-ordered, 26 Crockford base32 characters, lower case)."""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
MEMORY_ID_PATTERN = re.compile(r"mem_[0-9a-hjkmnp-tv-z]{26}")


def new_memory_id() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "mem_" + "".join(reversed(chars))


def is_memory_id(value: object) -> bool:
    return isinstance(value, str) and MEMORY_ID_PATTERN.fullmatch(value) is not None  # not "$": it matches before a final newline
