"""A one-off repair for cubes written before issue 18: bring back true memories the old rule hid.

The old rule archived a live fact or preference when a new one of the same type and role
was close in meaning (cosine 0.8) and shared an entity with it. Those archives are told
apart by their ``supersede`` version row: the current rule records its reason there, the
old one recorded none. A supersession by the client's subject key (the same key on both)
was the client's decision and stays. Every other one is judged again by
``memory.supersession.decide``; where the new rule keeps both memories, the older one is
restored (which also unlinks the chain), unless this is a dry run.
"""

from __future__ import annotations

from dataclasses import dataclass

from memory.cube import MemCube
from memory.errors import MemCubeError, NotFound
from memory.models import SUPERSEDING_TYPES, Memory
from memory.supersession import Candidate, decide

CLIENT = "memcube doctor"


@dataclass
class Rejudged:
    """One memory the old rule archived, and what the current rule says about it."""

    id: str
    superseded_by: str
    text: str
    newer_text: str
    verdict: str
    reason: str
    restored: bool = False
    error: str | None = None

    @property
    def kept_by_new_rule(self) -> bool:
        return self.verdict != "replace"


def _candidate(memory: Memory) -> Candidate:
    return Candidate(
        text=memory.text, type=memory.type, role=memory.role, subject=memory.subject, entities=tuple(memory.entities)
    )


def archived_by_old_rule(cube: MemCube) -> list[tuple[Memory, Memory | None]]:
    """(older, newer) for each memory still archived by the rule before issue 18 (newer None: purged)."""
    found = []
    for older in cube.store.iter_all():
        if older.status != "archived" or not older.superseded_by or older.type not in SUPERSEDING_TYPES:
            continue
        supersessions = [v for v in cube.store.history(older.id) if v["op"] == "supersede"]
        if not supersessions or "reason" in supersessions[-1]["changes"]:
            continue
        try:
            newer: Memory | None = cube.store.get_many([older.superseded_by])[0]
        except NotFound:
            newer = None
        if newer is not None and newer.subject is not None and newer.subject == older.subject and newer.role == older.role:
            continue  # the client's subject key decided it
        found.append((older, newer))
    return found


def repair_supersessions(cube: MemCube, *, dry_run: bool = False) -> list[Rejudged]:
    """Judge each old-rule archive again; restore the ones the current rule keeps (not when ``dry_run``)."""
    cube.ensure_vectors()
    results = []
    for older, newer in archived_by_old_rule(cube):
        a = cube.vector_of(older.id)
        b = cube.vector_of(newer.id) if newer is not None else None
        if newer is None or a is None or b is None:
            # A deleted newer memory has no vector; nothing replaces the older one any more.
            decision_verdict, reason = "distinct", "the newer memory is gone"
        else:
            decision = decide(_candidate(newer), _candidate(older), float(a @ b))
            decision_verdict, reason = decision.verdict, decision.reason
        item = Rejudged(older.id, older.superseded_by or "", older.text, newer.text if newer else "", decision_verdict, reason)
        if item.kept_by_new_rule and not dry_run:
            try:
                cube.restore([older.id], client=CLIENT)
                item.restored = True
            except MemCubeError as exc:  # e.g. a live memory with the same text: leave this one archived
                item.error = str(exc)
        results.append(item)
    return results
