"""Supersession links that lead nowhere or round in a circle, and which of them to drop (issue 26).

``supersedes`` and ``superseded_by`` name another memory of the cube. An archive could
carry links to memories that are not in it (or crafted ones that form a cycle), and a
purge leaves the links of the memories it replaced pointing at nothing; the memory's page
then failed to load, so it could not be purged either. Import drops such links, and the
doctor finds and clears them in a cube.

A cycle is broken where it is least true: the newest memory of a ``superseded_by`` cycle
cannot have been replaced by an older one, and the oldest memory of a ``supersedes`` cycle
cannot have replaced a newer one. Memory ids begin with their creation time, so they sort
by age.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

FIELDS = ("supersedes", "superseded_by")
# memory id -> (supersedes, superseded_by)
Links = Mapping[str, tuple[str | None, str | None]]


def broken_links(links: Links, exists: Callable[[Iterable[str]], set[str]]) -> dict[str, set[str]]:
    """``{memory id: fields to clear}`` for the links in ``links`` that dangle, point at their own memory or close a cycle.

    ``exists`` is given the ids linked to and answers which of them are memories of the cube.
    """
    targets = {target for pair in links.values() for target in pair if target}
    present = exists(targets) if targets else set()
    drop: dict[str, set[str]] = {}
    for position, name in enumerate(FIELDS):
        following: dict[str, str] = {}
        for memory_id, pair in links.items():
            target = pair[position]
            if not target:
                continue
            if target not in present or target == memory_id:
                drop.setdefault(memory_id, set()).add(name)
            else:
                following[memory_id] = target
        for cycle in _cycles(following):
            keep_out = max(cycle) if name == "superseded_by" else min(cycle)
            drop.setdefault(keep_out, set()).add(name)
    return drop


def _cycles(following: dict[str, str]) -> list[list[str]]:
    """The cycles of a graph where each node links to at most one other (walked without recursion)."""
    walk_of: dict[str, int] = {}
    cycles = []
    for walk, start in enumerate(following):
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in walk_of:
            walk_of[node] = walk
            path.append(node)
            node = following.get(node)
        if node is not None and walk_of[node] == walk:
            cycles.append(path[path.index(node) :])
    return cycles
