"""Entity aliases: a first name, a surname, a handle or a short form stands for a full name.

"Marco" resolves to "Marco Bianchi" when Marco Bianchi is the only full name in the cube
that starts (or ends) with Marco; when two people share the first name it stays its own
entity, so nobody's memories are mixed. ``@marco_b`` resolves by its first part the same
way, and ``@marcobianchi`` by the joined name. The client can merge a name into another
(``Bob`` -> ``Robert Smith``, which the shape rule cannot know) or split one off (``Marco``
is not ``Marco Bianchi``); those choices are kept per cube and win over the rule.

Keys are ``memory.entities.normalize`` keys. An alias's *group* is its full name and every
name that resolves to it: what graph and search follow.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

_HANDLE_PARTS = re.compile(r"[._-]+")


class AliasChoices(BaseModel):
    """What the client decided: merges (alias -> entity) and splits (alias kept apart from entity)."""

    merged: dict[str, str] = Field(default_factory=dict, description="alias key -> the entity key it stands for")
    split: list[tuple[str, str]] = Field(default_factory=list, description="(alias key, entity key) pairs kept apart")


@dataclass
class AliasTable:
    to_full: dict[str, str] = field(default_factory=dict)  # alias key -> full-name key
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # short key -> the full names it could mean
    # First names and surnames of full names, for keys no memory names on its own ("Priya" in a query).
    short_index: dict[str, set[str]] = field(default_factory=dict)
    split: set[tuple[str, str]] = field(default_factory=set)

    def canonical(self, key: str) -> str:
        if key in self.to_full:
            return self.to_full[key]
        options = {o for o in self.short_index.get(key, ()) if (key, o) not in self.split}
        return next(iter(options)) if len(options) == 1 else key

    def group(self, key: str) -> list[str]:
        """The full name first, then every alias of it (``key`` itself included)."""
        full = self.canonical(key)
        return [full, *sorted({a for a, f in self.to_full.items() if f == full and a != full} | ({key} - {full}))]

    def knows(self, key: str) -> bool:
        return self.canonical(key) != key or key in self.to_full.values()


def _short_forms(full: str) -> list[str]:
    words = full.split()
    return [words[0], words[-1]] if len(words) > 1 else []


def build(keys: Iterable[str], choices: AliasChoices | None = None) -> AliasTable:
    """The alias table for the entity keys a cube knows."""
    choices = choices or AliasChoices()
    keys = set(keys)
    by_short: dict[str, set[str]] = defaultdict(set)
    joined: dict[str, set[str]] = defaultdict(set)
    for full in keys:
        if " " not in full or full.startswith(("@", "#", "http")):
            continue
        for short in _short_forms(full):
            by_short[short].add(full)
        joined[full.replace(" ", "")].add(full)
    split = {(a, f) for a, f in choices.split}
    table = AliasTable(short_index=dict(by_short), split=split)
    for key in keys:
        if " " in key or key.startswith(("#", "http")):
            continue
        if key.startswith("@"):
            body = key[1:]
            parts = [p for p in _HANDLE_PARTS.split(body) if p]
            options = joined.get(body.replace("_", "").replace(".", "").replace("-", ""), set()) or (
                by_short.get(parts[0], set()) if parts else set()
            )
        else:
            options = by_short.get(key, set())
        options = {o for o in options if (key, o) not in split}
        if len(options) == 1:
            table.to_full[key] = next(iter(options))
        elif len(options) > 1:
            table.ambiguous[key] = sorted(options)
    for alias, full in choices.merged.items():
        if (alias, full) not in split:
            table.to_full[alias] = table.canonical(full) if full != alias else full
            table.ambiguous.pop(alias, None)
    # A merged full name's own aliases follow it (Bob -> Robert Smith, Robert -> Robert Smith).
    for alias, full in list(table.to_full.items()):
        seen = {alias}
        while full in table.to_full and full not in seen:
            seen.add(full)
            full = table.to_full[full]
        table.to_full[alias] = full
    return table
