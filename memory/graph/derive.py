"""What the graph holds for a set of memories, derived from their SQLite rows as parameter lists.

``GraphStore`` writes a batch of memories with a fixed number of Cypher statements, each
unwinding one of these lists (``UNWIND $rows AS r ...``), instead of a few statements per
memory and per edge. Everything here is plain data: the rules of what enters the graph
live in this one function, and the store only binds the lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from memory.entities import normalize
from memory.relations import EXCLUSIVE
from memory.store.cube_store import GraphRow, RelationPeer


@dataclass
class GraphRows:
    """Rows to write, each a dict bound as one element of a list parameter."""

    memories: list[dict[str, Any]] = field(default_factory=list)  # {id, type}
    entities: list[dict[str, Any]] = field(default_factory=list)  # {name, display}, one per name
    mentions: list[dict[str, Any]] = field(default_factory=list)  # {id, name}
    relations: list[dict[str, Any]] = field(default_factory=list)  # {a, b, p, id, vf, vt, o: origin, x: invalidated_by}
    supersedes: list[dict[str, Any]] = field(default_factory=list)  # {a: newer, b: older}


# Entity names repeat across memories; normalising each spelling once keeps a batch cheap.
_key = lru_cache(maxsize=1 << 16)(normalize)


def in_graph(row: GraphRow) -> bool:
    """Whether a memory has a node: active, or superseded (the far end of a SUPERSEDES link)."""
    return row.status == "active" or (row.status == "archived" and bool(row.superseded_by))


def row_links(row: GraphRow) -> list[tuple[str, str]]:
    """The SUPERSEDES links (newer, older) a memory's row names: the newer's ``supersedes`` holds only
    the first memory it replaced; each older one's ``superseded_by`` names the newer."""
    if not in_graph(row):
        return []
    links = []
    if row.status == "archived" and row.superseded_by:
        links.append((row.superseded_by, row.id))
    if row.supersedes:  # also when this one is superseded in turn: the chain keeps its middle
        links.append((row.id, row.supersedes))
    return links


def relation_keys(rows: Mapping[str, GraphRow]) -> list[tuple[str, str]]:
    """The (source, type) of the exclusive relations these memories hold: what their peers are found by."""
    keys = set()
    for row in rows.values():
        for rel in relations_of(row):
            if rel["p"] in EXCLUSIVE:
                keys.add((_key(rel["s"]), rel["p"]))
    return sorted(keys)


def relations_of(row: GraphRow) -> list[dict[str, Any]]:
    """A memory's relations for the graph: the client's when it gave any, else those read from its text.
    Each as {s, p, o, origin, vf, vt, ended}."""
    if row.relations:
        return [
            {
                "s": r["subject"],
                "p": r["predicate"],
                "o": r["object"],
                "origin": "client",
                "vf": r.get("valid_from"),  # as the client gave it (ends are still found by the memory's time)
                "vt": r.get("valid_to"),
                "ended": False,
            }
            for r in row.relations
        ]
    return [
        {"s": r["source"], "p": r["type"], "o": r["target"], "origin": "extracted", "vf": row.at, "vt": None, "ended": r["ended"]}
        for r in row.extracted
    ]


def _ended_by(
    source: str, type_: str, target: str, since: str | None, memory_id: str, peers: Sequence[RelationPeer]
) -> RelationPeer | None:
    """The earliest later relation of another memory that ends this exclusive one: the same source and
    type with another target, or the same target said to be over ("moved from Lyon")."""
    best: RelationPeer | None = None
    for peer in peers:
        if peer.memory_id == memory_id or peer.source != source or peer.type != type_:
            continue
        if (peer.target == target) != peer.ended:
            continue
        if since is not None and (peer.at, peer.memory_id) <= (since, memory_id):
            continue
        if best is None or (peer.at, peer.memory_id) < (best.at, best.memory_id):
            best = peer
    return best


def derive(
    memory_ids: Sequence[str],
    rows: Mapping[str, GraphRow],
    neighbours: Mapping[str, GraphRow] | None = None,
    peers: Sequence[RelationPeer] = (),
) -> GraphRows:
    """The nodes and edges of ``memory_ids`` (in that order); a memory without a row (purged) yields nothing.

    Active memories get a node, their mentions and relations; a superseded memory keeps a
    node as an end of its SUPERSEDES links, without mentions; other memories have no part.
    A SUPERSEDES link is named by either end's row (``row_links``), so ``neighbours``, the
    rows of memories outside ``memory_ids`` linked to them in the graph, add the links
    their rows name to a memory of ``memory_ids``.
    A relation holds from its memory's time (``valid_from``) until a later memory among ``peers``
    (``relation_peers`` of ``relation_keys``) ends it, when its type is exclusive, or until its memory
    is superseded: then ``valid_to`` and ``invalidated_by`` say when and by which memory; a
    superseded memory keeps its relations, closed.
    An entity's display is the first spelling met in this order (an entity already in the
    graph keeps its own: the writer merges on the name).
    """
    out = GraphRows()
    displays: dict[str, str] = {}
    mentioned: set[tuple[str, str]] = set()
    links: set[tuple[str, str]] = set()

    def entity(key: str, display: str) -> None:
        if key not in displays:
            displays[key] = display
            out.entities.append({"name": key, "display": display})

    def link(newer: str, older: str) -> None:
        if (newer, older) not in links:
            links.add((newer, older))
            out.supersedes.append({"a": newer, "b": older})

    batch = set(memory_ids)

    for memory_id in memory_ids:
        row = rows.get(memory_id)
        if row is None:
            continue
        if not in_graph(row):
            continue
        out.memories.append({"id": memory_id, "type": row.type})
        for newer, older in row_links(row):
            link(newer, older)
        if row.status == "active":
            for display in row.entities:
                key = _key(display)
                if not key:
                    continue
                entity(key, display)
                if (memory_id, key) not in mentioned:  # two spellings of one name are one mention
                    mentioned.add((memory_id, key))
                    out.mentions.append({"id": memory_id, "name": key})
        for rel in relations_of(row):
            subject, obj = _key(rel["s"]), _key(rel["o"])
            if not subject or not obj:
                continue
            valid_to, closed_by = rel["vt"], None
            valid_from = rel["vf"]
            if rel["ended"]:  # the memory itself says it is over ("moved from Lyon"); since when, it does not say
                valid_from, valid_to, closed_by = None, row.at, memory_id
            elif row.status != "active":  # superseded: its relations end with it
                valid_to, closed_by = valid_to or row.updated_at, row.superseded_by
            elif valid_to is None and rel["p"] in EXCLUSIVE:
                later = _ended_by(subject, rel["p"], obj, rel["vf"] or row.at, memory_id, peers)
                if later is not None:
                    valid_to, closed_by = later.at, later.memory_id
            entity(subject, rel["s"])
            entity(obj, rel["o"])
            out.relations.append(
                {
                    "a": subject,
                    "b": obj,
                    "p": rel["p"],
                    "id": memory_id,
                    "vf": valid_from,
                    "vt": valid_to,
                    "o": rel["origin"],
                    "x": closed_by,
                }
            )
    for other_id, row in (neighbours or {}).items():
        if other_id not in batch:
            for newer, older in row_links(row):
                if newer in batch or older in batch:
                    link(newer, older)
    return out
