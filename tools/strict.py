"""Argument types that take a JSON value only as what it is (issue 13).

pydantic's default (lax) mode turns ``"yes"`` into ``True`` and ``true`` into ``1``: a
client that sent ``purge: "yes"`` erased a memory. Tool parameters use these instead.
A float parameter still takes a JSON integer (``1`` is a fine importance).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Strict

Flag = Annotated[bool, Strict()]
Count = Annotated[int, Strict()]
Fraction = Annotated[float, Strict()]


def _no_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("give a number, not true or false")
    return value


# For Literal numbers, which take no Strict(): True would otherwise be read as 1.
NoBool = BeforeValidator(_no_bool)
