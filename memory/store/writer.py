"""What a write to a cube decides, on either engine: one writer over the tables of a transaction.

An add, an update, a status change, a purge, a task's feedback and a re-embedding each run in
one write transaction and make the same decisions whatever the engine:

- an exact duplicate of a live memory returns that memory (an archived one comes back);
- a restatement (``NewMemory.restates``) confirms the memory it restates instead of a copy;
- a new preference or fact with the subject key and role of active ones supersedes them
  (archived with ``superseded_by`` and the reason, never overwritten), as does one the cube
  judged to replace them (``NewMemory.supersede``);
- every change is a new version with a history row that holds what changed (``changes``);
- entities and relations are rewritten with the memory, the threads it leaves and joins get
  their context windows rebuilt, and the change is queued for the graph and other servers.

The engine's side is ``memory.store.contract.WriteTables``: rows in, rows out, no decisions.
Callers take the transaction (``transaction()`` gives the tables bound to it), so everything a
write does commits together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memory.entities import normalize
from memory.errors import Conflict, InvalidInput, NotFound
from memory.ids import is_memory_id, new_memory_id
from memory.models import SUPERSEDING_TYPES, AddOutcome, FeedbackEntry, Memory, MemoryStatus, Superseded
from memory.store.contract import LiveDuplicate, RelationRow, WriteTables
from memory.store.import_rows import UNFINISHED_KEY, ImportRow, ImportRun, choose, unfinished_value
from memory.store.rows import FIELDS, content_hash
from memory.timeutil import now_stored


@dataclass
class NewMemory:
    """A memory ready to be written: validated, entities resolved, vector computed."""

    text: str
    type: str
    tags: list[str]
    entities: list[str]
    relations: list[dict[str, Any]]
    occurred_at: str | None
    metadata: dict[str, Any]
    importance: float
    confidence: float
    source: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    role: str | None = None
    subject: str | None = None  # normalised subject key
    state: str | None = None
    due_at: str | None = None
    parent_id: str | None = None
    # Live memories the cube judged this one to replace (memory.supersession), with the reason.
    supersede: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    # A live memory this one restates in other words: it is confirmed instead of a copy added.
    restates: str | None = None
    vector: np.ndarray | None = None
    # Relations read from the text (memory.relations: {source, type, target, ended}); unused when the client gave relations.
    extracted: list[dict[str, Any]] = field(default_factory=list)
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        self.hash = content_hash(self.text)

    def fields(self) -> dict[str, Any]:
        """The memory's own fields, named as ``Memory`` names them (what the client gave, resolved)."""
        return {name: getattr(self, name) for name in _GIVEN_FIELDS}


# What an add takes from the caller: every NewMemory field that is also a Memory field.
_GIVEN_FIELDS = tuple(name for name in NewMemory.__dataclass_fields__ if name in FIELDS)
# The fields an add records in the first version's ``changes`` when they are set.
_OPTIONAL_RECORDED = ("role", "subject", "state", "due_at", "parent_id")


def check_ids(ids: Sequence[str]) -> None:
    bad = [i for i in ids if not is_memory_id(i)]
    if bad:
        shown = ", ".join(repr(b)[:60] for b in bad[:5])
        raise InvalidInput(f"not a memory id: {shown}; ids look like 'mem_01jc3...' (as returned by memory_add)")


def entity_rows(names: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, normalised key)`` for each entity, one per key (the first name given wins)."""
    rows: dict[str, str] = {}
    for name in names:
        key = normalize(name)
        if key:
            rows.setdefault(key, name)
    return [(name, key) for key, name in rows.items()]


def relation_rows(relations: Sequence[dict[str, Any]]) -> list[RelationRow]:
    """Relations read from a text, keyed by their normalised ends (a relation of an entity to itself is none)."""
    rows = []
    for rel in relations:
        source, target = normalize(rel["source"]), normalize(rel["target"])
        if source and target and source != target:
            rows.append(RelationRow(rel["source"], source, rel["type"], rel["target"], target, bool(rel.get("ended"))))
    return rows


class MemoryWriter:
    """One cube's writes. ``transaction()`` opens a write transaction and gives its tables."""

    def __init__(self, cube: str, transaction: Callable[[], AbstractContextManager[WriteTables]]) -> None:
        self.cube = cube
        self._transaction = transaction

    def add(self, items: Sequence[NewMemory], *, client: str | None, model_id: str | None) -> list[AddOutcome]:
        """Insert memories; an exact duplicate of a live memory returns that memory's id instead,
        and a restatement (``item.restates``) confirms the memory it restates."""
        outcomes: list[AddOutcome] = []
        now = now_stored()
        with self._transaction() as t:
            seq = t.next_seq()
            batch_ids: dict[str, str] = {}
            created_rows: list[int] = []
            for item in items:
                existing = batch_ids.get(item.hash) or t.live_id_by_hash(item.hash)
                if existing:
                    # Saying an archived memory again makes it current again (a new version, not a copy).
                    self._reactivate(t, existing, now, client, seq)
                    outcomes.append(AddOutcome(id=existing, created=False))
                    continue
                if item.restates and self._restate(t, item, now, client, seq):
                    outcomes.append(AddOutcome(id=item.restates, created=False, restated=item.restates))
                    continue
                memory_id = new_memory_id()
                if item.parent_id is not None:
                    self._current(t, item.parent_id)  # a task's goal must exist in this cube
                replaced, reasons = self._superseded_by_new(t, item)
                values = {
                    **item.fields(),
                    "id": memory_id,
                    "kind": "plaintext",
                    "status": "active",
                    "client": client,
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                    "access_count": 0,
                    "content_hash": item.hash,
                    "embedding_model": model_id if item.vector is not None else None,
                    "supersedes": replaced[0] if replaced else None,
                    "seq": seq,
                }
                row_id = t.insert_memory(values)
                t.insert_entities(row_id, entity_rows(item.entities))
                if not item.relations:  # the client's relations win over those read from the text
                    t.insert_relations(row_id, relation_rows(item.extracted))
                if item.vector is not None:
                    t.put_vector(row_id, item.vector, replace=False)
                changes = {
                    "text": {"old": None, "new": item.text},
                    "type": {"old": None, "new": item.type},
                    "tags": {"old": None, "new": item.tags},
                    "entities": {"old": None, "new": item.entities},
                    "relations": {"old": None, "new": item.relations},
                    "occurred_at": {"old": None, "new": item.occurred_at},
                    "metadata": {"old": None, "new": item.metadata},
                    "status": {"old": None, "new": "active"},
                }
                for key in _OPTIONAL_RECORDED:
                    if getattr(item, key) is not None:
                        changes[key] = {"old": None, "new": getattr(item, key)}
                if replaced:
                    changes["supersedes"] = {"old": None, "new": replaced[0]}
                t.record(memory_id, 1, "add", now, client, changes)
                superseded = [
                    Superseded(id=old_id, reason=reasons[old_id])
                    for old_id in replaced
                    if self._supersede(t, old_id, memory_id, now, client, seq, reasons[old_id])
                ]
                t.queue([memory_id])
                batch_ids[item.hash] = memory_id
                outcomes.append(AddOutcome(id=memory_id, created=True, superseded=superseded))
                created_rows.append(row_id)
            t.refresh_windows(created_rows)
        return outcomes

    def update(
        self,
        memory_id: str,
        new_values: dict[str, Any],
        *,
        vector: np.ndarray | None,
        model_id: str | None,
        client: str | None,
        extracted: list[dict[str, Any]] | None = None,
    ) -> Memory:
        """Apply changed fields as a new version. ``new_values`` holds plain Python values;
        ``extracted``, when given, replaces the relations read from the text."""
        check_ids([memory_id])
        now = now_stored()
        with self._transaction() as t:
            current = self._current(t, memory_id)
            if current.status == "deleted":
                raise NotFound(f"memory {memory_id} was deleted; add it again instead of updating it")
            before = current.model_dump()
            changes: dict[str, dict[str, Any]] = {}
            for key, value in new_values.items():
                old = before[key] if key != "relations" else [r for r in before["relations"]]
                if old != value:
                    changes[key] = {"old": old, "new": value}
            if not changes:
                return current
            if "text" in changes:
                duplicate = t.live_id_by_hash(content_hash(new_values["text"]))
                if duplicate and duplicate != memory_id:
                    raise Conflict(f"memory {duplicate} already holds exactly this text; update or delete that one instead")
            seq = t.next_seq()
            columns = {k: v["new"] for k, v in changes.items()}
            if "text" in columns:
                columns["content_hash"] = content_hash(columns["text"])
            if vector is not None:
                columns["embedding_model"] = model_id
            columns.update({"version": current.version + 1, "updated_at": now, "seq": seq})
            [row_id] = t.row_ids_of([memory_id])
            moved_from = t.thread_keys([row_id])
            t.set_columns(memory_id, columns)
            if vector is not None:
                t.put_vector(row_id, vector)
            if "entities" in columns:
                t.drop_entities(row_id)
                t.insert_entities(row_id, entity_rows(columns["entities"]))
            if extracted is not None:
                t.drop_relations(row_id)
                t.insert_relations(row_id, relation_rows(extracted))
            if "text" in columns or "occurred_at" in columns:
                t.refresh_windows([row_id])
                t.refresh_threads(moved_from)  # a new day can move it out of an inferred thread
            t.record(memory_id, current.version + 1, "update", now, client, changes)
            t.queue([memory_id])
            return self._current(t, memory_id)

    def set_status(
        self, ids: Sequence[str], *, to: MemoryStatus, allowed_from: tuple[MemoryStatus, ...], op: str, client: str | None
    ) -> list[Memory]:
        check_ids(ids)
        now = now_stored()
        with self._transaction() as t:
            currents = [self._current(t, i) for i in ids]
            wrong = [m for m in currents if m.status not in allowed_from]
            if wrong:
                detail = ", ".join(f"{m.id} is {m.status}" for m in wrong[:10])
                tombstone = (
                    "; a deleted memory is a tombstone and cannot come back, but its text stays in its history "
                    "until it is purged, to be added again as a new memory"
                    if to == "active" and any(m.status == "deleted" for m in wrong)
                    else ""
                )
                raise Conflict(f"cannot {op}: {detail} (only {' or '.join(allowed_from)} memories can be {op}d{tombstone})")
            seq = t.next_seq()
            for memory in currents:
                try:
                    t.set_columns(memory.id, {"status": to, "version": memory.version + 1, "updated_at": now, "seq": seq})
                except LiveDuplicate:
                    duplicate = t.live_id_by_hash(memory.content_hash)
                    raise Conflict(
                        f"cannot {op} {memory.id}: memory {duplicate} with the same text is live; delete it first"
                    ) from None
                if to == "deleted":
                    [row_id] = t.row_ids_of([memory.id])
                    t.drop_vector(row_id)
                    t.drop_entities(row_id)
                changes: dict[str, Any] = {"status": {"old": memory.status, "new": to}}
                if to == "active" and memory.superseded_by:
                    changes.update(self._unlink(t, memory, now, client, seq))
                t.record(memory.id, memory.version + 1, op, now, client, changes)
                t.queue([memory.id])
            t.refresh_windows(t.row_ids_of(ids))
            return [self._current(t, i) for i in ids]

    def purge(self, ids: Sequence[str], *, client: str | None) -> None:
        """Erase memories for good: the row, its vector and entities go; one 'purge' version row stays as the trace."""
        check_ids(ids)
        now = now_stored()
        with self._transaction() as t:
            currents = [self._current(t, i) for i in ids]
            threads = t.thread_keys(t.row_ids_of(ids))
            t.next_seq()
            for memory in currents:
                [row_id] = t.row_ids_of([memory.id])
                t.drop_vector(row_id)
                t.delete_memory(memory.id)  # its entities, relations, window and feedback go with it
                # The content is erased from history too: purge means the text must not survive anywhere.
                t.erase_history(memory.id)
                t.record(memory.id, memory.version + 1, "purge", now, client, {"status": {"old": memory.status, "new": None}})
                t.queue([memory.id])
            t.refresh_threads(threads)
            t.vectors_removed()
            t.entities_removed()

    def add_feedback(self, memory_id: str, entry: FeedbackEntry, *, client: str | None) -> None:
        """Append an entry to a task's log; recorded as a version."""
        check_ids([memory_id])
        with self._transaction() as t:
            current = self._current(t, memory_id)
            if current.type != "task":
                raise InvalidInput(f"memory {memory_id} is a {current.type}; feedback entries belong to tasks")
            if current.status == "deleted":
                raise NotFound(f"memory {memory_id} was deleted")
            seq = t.next_seq()
            now = now_stored()
            t.insert_feedback(memory_id, entry, client)
            t.set_columns(memory_id, {"version": current.version + 1, "updated_at": now, "seq": seq})
            t.record(
                memory_id,
                current.version + 1,
                "feedback",
                now,
                client,
                {"feedback": {"old": None, "new": entry.model_dump(exclude={"client"})}},
            )

    def store_vectors(self, rows: Sequence[tuple[int, np.ndarray]], model_id: str) -> None:
        """Replace vectors (re-embedding after a model change)."""
        with self._transaction() as t:
            seq = t.next_seq()
            for row_id, vector in rows:
                t.put_vector(row_id, vector)
                t.set_embedding_model(row_id, model_id, seq)

    # -- decisions shared by the writes above ------------------------------------------

    def _current(self, t: WriteTables, memory_id: str) -> Memory:
        memory = t.find(memory_id)
        if memory is None:
            raise NotFound(f"no memory {memory_id} in cube '{self.cube}'")
        return memory

    def _superseded_by_new(self, t: WriteTables, item: NewMemory) -> tuple[list[str], dict[str, str]]:
        """Active memories a new preference or fact replaces, with the reason: same subject key and
        role (read here, in the write transaction), or judged by the cube (``item.supersede``)."""
        if item.type not in SUPERSEDING_TYPES:
            return [], {}
        reasons = {i: item.reasons.get(i, "judged to be replaced") for i in item.supersede}
        if item.subject is not None:
            role = f" and role '{item.role}'" if item.role else ""
            for memory_id in t.same_subject(item.type, item.subject, item.role):
                reasons.setdefault(memory_id, f"same subject '{item.subject}'{role}, given by the client")
        return list(reasons), reasons

    def _supersede(
        self, t: WriteTables, old_id: str, new_id: str, now: str, client: str | None, seq: int, reason: str | None
    ) -> bool:
        """Archive ``old_id`` in favour of ``new_id``: a new version of the old, never a silent overwrite.
        The version row keeps the reason; ``memcube doctor`` tells these from the rule before issue 18,
        which gave none (``reason=None`` writes such a row, as that rule did)."""
        old = self._current(t, old_id)
        if old.status != "active":
            return False
        t.set_columns(
            old_id, {"status": "archived", "superseded_by": new_id, "version": old.version + 1, "updated_at": now, "seq": seq}
        )
        t.record(
            old_id,
            old.version + 1,
            "supersede",
            now,
            client,
            {
                "status": {"old": "active", "new": "archived"},
                "superseded_by": {"old": None, "new": new_id},
                **({"reason": {"old": None, "new": reason}} if reason is not None else {}),
            },
        )
        t.queue([old_id])
        return True

    def _restate(self, t: WriteTables, item: NewMemory, now: str, client: str | None, seq: int) -> bool:
        """Confirm the live memory ``item`` restates: one more access, and a version row that keeps the
        new wording and its ``occurred_at``. False when that memory is no longer live (then add ``item``)."""
        assert item.restates is not None
        current = self._current(t, item.restates)
        if current.status != "active":
            return False
        t.set_columns(
            current.id,
            {
                "access_count": current.access_count + 1,
                "last_access": now,
                "version": current.version + 1,
                "updated_at": now,
                "seq": seq,
            },
        )
        said = {
            "text": item.text,
            "occurred_at": item.occurred_at,
            "session_id": item.session_id,
            "reason": item.reasons.get(current.id),
        }
        t.record(
            current.id,
            current.version + 1,
            "restate",
            now,
            client,
            {
                "restated": {"old": None, "new": {k: v for k, v in said.items() if v is not None}},
                "access_count": {"old": current.access_count, "new": current.access_count + 1},
            },
        )
        return True

    def _unlink(self, t: WriteTables, older: Memory, now: str, client: str | None, seq: int) -> dict[str, Any]:
        """Undo a supersession as ``older`` comes back: clear its ``superseded_by`` and the newer one's
        ``supersedes`` (a version of the newer); the graph drops the SUPERSEDES link on resync. Returns
        the change to record on ``older``."""
        t.set_columns(older.id, {"superseded_by": None})
        newer = t.find(older.superseded_by) if older.superseded_by else None
        if newer is not None and newer.supersedes == older.id:
            t.set_columns(newer.id, {"supersedes": None, "version": newer.version + 1, "updated_at": now, "seq": seq})
            t.record(newer.id, newer.version + 1, "unlink", now, client, {"supersedes": {"old": older.id, "new": None}})
            t.queue([newer.id])
        return {"superseded_by": {"old": older.superseded_by, "new": None}}

    def _reactivate(self, t: WriteTables, memory_id: str, now: str, client: str | None, seq: int) -> None:
        current = self._current(t, memory_id)
        if current.status != "archived":
            return
        t.set_columns(memory_id, {"status": "active", "version": current.version + 1, "updated_at": now, "seq": seq})
        changes: dict[str, Any] = {"status": {"old": "archived", "new": "active"}}
        if current.superseded_by:
            changes.update(self._unlink(t, current, now, client, seq))
        t.record(memory_id, current.version + 1, "restore", now, client, changes)
        t.queue([memory_id])

    def import_rows(self, items: Sequence[ImportRow], run: ImportRun) -> list[str]:
        """Store archived memories as they were, in one transaction (``memory.store.import_rows``).

        Each keeps its id, times, status and history, gets one ``import`` version carrying ``note``,
        its feedback log, entity rows, the relations read from its text and its vector; all are
        queued for the graph and the windows of the threads they join rebuilt. Returns, per item,
        its outcome (``import_rows.choose``). ``run.unfinished`` names the import in the cube until
        the caller's ``finish_import``. (The data folder writes a chunk in bulk statements instead:
        ``memory.store.bulk_import``, the same rows.)
        """
        with self._transaction() as t:
            if run.unfinished is not None:
                t.set_setting(UNFINISHED_KEY, unfinished_value(run.unfinished))
            taken, live = t.known([i.row["id"] for i in items], [content_hash(i.row["text"]) for i in items])
            outcomes, chosen = choose(items, taken, live)
            seq = t.next_seq()
            row_ids = []
            for item, hash_ in chosen:
                memory_id = item.row["id"]
                vector = item.vector if item.live else None
                row_id = t.insert_memory(
                    {
                        **item.row,
                        "content_hash": hash_,
                        "seq": seq,
                        "embedding_model": run.model_id if vector is not None else None,
                    }
                )
                imported = {
                    "version": item.row["version"],
                    "op": "import",
                    "at": run.at,
                    "client": run.client,
                    "changes": run.note,
                }
                for v in [*item.versions, imported]:
                    t.record(memory_id, v["version"], v["op"], v["at"], v["client"], v["changes"])
                for entry in item.feedback:
                    t.insert_feedback(memory_id, FeedbackEntry.model_validate(entry), entry.get("client"))
                if item.live:
                    t.insert_entities(row_id, entity_rows(item.row["entities"]))
                    if not item.row["relations"]:  # the client's relations win over those read from the text
                        t.insert_relations(row_id, relation_rows(item.relations or []))
                if vector is not None:
                    t.put_vector(row_id, vector, replace=False)
                row_ids.append(row_id)
            t.queue([item.row["id"] for item, _ in chosen])
            t.refresh_windows(row_ids)
        return outcomes


class WritesThroughWriter:
    """A store's write methods, each ``MemoryWriter``'s: both engines' stores take them from here."""

    _writer: MemoryWriter

    def get_many(self, ids: Sequence[str], *, include_deleted: bool = True) -> list[Memory]:
        raise NotImplementedError

    def add(self, items: Sequence[NewMemory], *, client: str | None, model_id: str | None) -> list[AddOutcome]:
        """Insert memories (duplicates, restatements and supersessions: ``MemoryWriter.add``)."""
        return self._writer.add(items, client=client, model_id=model_id)

    def update(
        self,
        memory_id: str,
        new_values: dict[str, Any],
        *,
        vector: np.ndarray | None,
        model_id: str | None,
        client: str | None,
        extracted: list[dict[str, Any]] | None = None,
    ) -> Memory:
        """Apply changed fields as a new version (``MemoryWriter.update``)."""
        return self._writer.update(memory_id, new_values, vector=vector, model_id=model_id, client=client, extracted=extracted)

    def set_status(
        self, ids: Sequence[str], *, to: MemoryStatus, allowed_from: tuple[MemoryStatus, ...], op: str, client: str | None
    ) -> list[Memory]:
        return self._writer.set_status(ids, to=to, allowed_from=allowed_from, op=op, client=client)

    def purge(self, ids: Sequence[str], *, client: str | None) -> None:
        """Erase memories for good; the history keeps one contentless 'purge' row each."""
        self._writer.purge(ids, client=client)

    def add_feedback(self, memory_id: str, entry: FeedbackEntry, *, client: str | None) -> Memory:
        """Append an entry to a task's log (a new version); returns the task with its log."""
        self._writer.add_feedback(memory_id, entry, client=client)
        return self.get_many([memory_id])[0]

    def store_vectors(self, rows: Sequence[tuple[int, np.ndarray]], model_id: str) -> None:
        """Replace vectors (re-embedding after a model change)."""
        self._writer.store_vectors(rows, model_id)

    def import_rows(self, items: Sequence[ImportRow], run: ImportRun) -> list[str]:
        """Archived memories as they were, in one transaction (``MemoryWriter.import_rows``)."""
        return self._writer.import_rows(items, run)
