"""A MemCube: one namespace of memories with its own SQLite file, graph and vectors.

This is the memory API. The MCP tools, the CLI and library users all call it; it
validates input with the pydantic models, keeps the derived stores (vectors, FTS, graph)
in step with SQLite, and raises ``MemCubeError`` subclasses with messages meant for the
caller. Methods block: async callers run them in worker threads.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memory.entities import extract_entities, extract_entities_many, normalize
from memory.errors import InvalidInput, NotFound, Unavailable
from memory.graph.graph_store import PREVIEW_CHARS, GraphStore
from memory.models import (
    MAX_BATCH,
    MAX_CONTEXT_TURNS,
    MAX_ENTITIES,
    MAX_IDS,
    STATES,
    SUPERSEDING_TYPES,
    AddOutcome,
    AliasView,
    ClientActivity,
    ContextTurn,
    CubeStats,
    EntityView,
    FeedbackEntry,
    FeedbackInput,
    Memory,
    MemoryInput,
    MemoryPage,
    MemoryPatch,
    SearchHit,
    SearchQuery,
    SearchResult,
    VersionEntry,
    check_encodable,
    check_known_type,
    check_state,
)
from memory.profile import DEFAULT_BUDGET_TOKENS, Profile, build_profile
from memory.relations import read_relations, read_relations_many
from memory.retrieval import planning
from memory.retrieval.aliases import AliasChoices, AliasTable
from memory.retrieval.aliases import build as build_aliases
from memory.retrieval.embedder import Embedder
from memory.retrieval.search import context_turns, embedding_text, hybrid_search
from memory.store.browse import MAX_PAGE, BrowseFilter, decode_cursor, encode_cursor
from memory.store.contract import SearchSource, VectorScores
from memory.store.cube_store import CubeStore
from memory.store.engines import AnyCubeStore
from memory.store.vector_mirror import VectorMirror
from memory.store.writer import NewMemory, check_ids
from memory.supersession import REPLACE_COSINE, RESTATE_COSINE, Candidate, decide
from memory.timeutil import now_stored, parse_moment, stored_from_input

if TYPE_CHECKING:
    from memory.store.postgres.cube_store import PostgresCubeStore

log = logging.getLogger(__name__)


REEMBED_BATCH = 128
ALIAS_META = "entity_aliases"
# Live memories closer than this to a new fact or preference are read and judged (memory.supersession).
SUPERSEDE_SIMILARITY = min(REPLACE_COSINE, RESTATE_COSINE)


def _relation_dicts(relations: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "subject": r.subject,
            "predicate": r.predicate,
            "object": r.object,
            "valid_from": stored_from_input(r.valid_from, field="valid_from"),
            "valid_to": stored_from_input(r.valid_to, field="valid_to"),
        }
        for r in relations
    ]


def resolve_entities(
    text: str, given: Sequence[str], relations: Sequence[dict[str, Any]], found: Sequence[str] | None = None
) -> list[str]:
    """The client's entities, then relation endpoints, then names found locally (``found``, or read
    from ``text`` now); no duplicates. The client's names win: a name found in the text that is part
    of one the client gave ("Okafor" in "Dr. Okafor") is that name, not a second entity."""
    names: dict[str, str] = {}
    chosen = [*given, *(r["subject"] for r in relations), *(r["object"] for r in relations)]
    chosen_words = [f" {normalize(n)} " for n in chosen]
    for name in chosen:
        key = normalize(name)
        if key and key not in names:
            names[key] = name.strip()
    for name in extract_entities(text) if found is None else found:
        key = normalize(name)
        if key and key not in names and not any(f" {key} " in words for words in chosen_words):
            names[key] = name.strip()
    return list(names.values())[: MAX_ENTITIES * 2]


# Patch fields that are normalised, checked against the cube or resolved with the text, not copied.
_RESOLVED_ON_UPDATE = frozenset({"subject", "parent_id", "state", "relations", "entities", "clear"})


def _checked_id(value: str | None) -> str | None:
    if value is not None:
        check_ids([value])
    return value


def _check_count(ids: Sequence[str], what: str = "ids") -> None:
    if not ids:
        raise InvalidInput(f"give at least one memory id in {what}")
    if len(ids) > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS} {what} per call; split the request")


@dataclass
class _AliasCache:
    """The alias table and what it was built from: the cube's state, the client's choices and the keys."""

    state: tuple[int, str]
    choices_raw: str | None
    keys: set[str]
    table: AliasTable


class MemCube:
    def __init__(
        self,
        name: str,
        folder: Path,
        embedder: Embedder,
        *,
        custom_types: Sequence[str] = (),
        store: PostgresCubeStore | None = None,
    ) -> None:
        """A cube in ``folder`` (its SQLite file and Kuzu graph), or, given ``store``, a cube of the
        PostgreSQL store whose local graph lives in ``folder``."""
        self.name = name
        self.custom_types = frozenset(custom_types)
        self.folder = folder
        self.embedder = embedder
        self.store: AnyCubeStore = store if store is not None else CubeStore(name, folder / "memory.db")
        graph_path = folder / "graph" / "graph.kuzu"
        # A server new to a store's cube (or whose graph folder went) has no graph yet: it derives
        # one from the store's memories, rather than replaying a change log as long as the cube's life.
        first_graph = store is not None and not graph_path.exists()
        try:
            self.graph_store = GraphStore(graph_path)
            # A restored backup carries no graph: the first use derives it from SQLite.
            self.graph_store.needs_rebuild = first_graph or self.store.meta("graph_rebuild") == "1"
        except BaseException:
            self.store.close()  # a cube that did not open holds no file (its opener may try again)
            raise
        self.mirror = VectorMirror()
        # Where the ranking reads from, when not this folder's own store: the PostgreSQL store's
        # cube (its own row ids), or another engine's copy (``read_ranking_from``, whose are not).
        self._ranking_reads: tuple[SearchSource, VectorScores] | None = None
        self._reads_own_rows = True
        if store is not None:
            self._ranking_reads = store.ranking_reads()
        self._vectors_ready = False
        self._vector_lock = threading.Lock()
        self._pending_access: Counter[int] = Counter()
        self._access_lock = threading.Lock()
        self._aliases: _AliasCache | None = None

    @property
    def folder_store(self) -> CubeStore:
        """The cube's SQLite file, for work only a data folder's cube has (imports, repairs of the file)."""
        if not isinstance(self.store, CubeStore):
            raise Unavailable(
                f"cube '{self.name}' lives in the PostgreSQL store, and this works on a data folder's cube: "
                "`memcube doctor --store` checks the store"
            )
        return self.store

    def close(self) -> None:
        self.flush_access()
        self.graph_store.close()
        self.store.close()

    # -- vectors --------------------------------------------------------------------

    def ensure_vectors(self) -> None:
        """Make sure every live memory has a vector from the configured model (re-embedding if the model changed)."""
        if self._vectors_ready:
            return
        with self._vector_lock:
            if self._vectors_ready:
                return
            model_id, dim = self.embedder.model_id, self.embedder.dim
            if self.store.ensure_vector_table(model_id, dim):
                log.warning("cube %s: embedding model changed to %s; re-embedding its memories", self.name, model_id)
            self._reembed_stale(model_id)
            self._vectors_ready = True

    def _reembed_stale(self, model_id: str) -> int:
        done = 0
        while rows := self.store.stale_embeddings(model_id, REEMBED_BATCH):
            vectors = self.embedder.embed([embedding_text(text) for _, text in rows])
            self.store.store_vectors([(row_id, vectors[i]) for i, (row_id, _) in enumerate(rows)], model_id)
            done += len(rows)
            log.info("cube %s: re-embedded %d memories", self.name, done)
        return done

    def reembed(self) -> int:
        """Re-embed every live memory with the configured model."""
        self.store.forget_embedding_models()
        self._vectors_ready = False
        self.ensure_vectors()
        return self.store.counts()["active"] + self.store.counts()["archived"]

    # -- writes ---------------------------------------------------------------------

    def add(self, inputs: Sequence[MemoryInput | dict[str, Any]], *, client: str | None = None) -> list[AddOutcome]:
        if not inputs:
            raise InvalidInput("nothing to add: give text, or memories with at least one item")
        if len(inputs) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} memories per call; split the batch")
        items = [i if isinstance(i, MemoryInput) else MemoryInput.model_validate(i) for i in inputs]
        for item in items:
            check_known_type(item.type, self.custom_types)
        self.ensure_vectors()
        # One parse of the batch (spaCy's pipe), names the cube knows linked in lower case too.
        found = extract_entities_many([item.text for item in items], known=self.knows_entity())
        prepared: list[NewMemory] = []
        for item, names in zip(items, found, strict=True):
            relations = _relation_dicts(item.relations)
            # Every field as validated (times already in stored form), less those resolved here.
            resolved = {
                "entities": resolve_entities(item.text, item.entities, relations, names),
                "relations": relations,
                "subject": normalize(item.subject) if item.subject else None,
                "parent_id": _checked_id(item.parent_id),
            }
            prepared.append(NewMemory(**{**dict(item), **resolved}))
        known = self.knows_entity()
        for new in prepared:
            if not new.relations:  # the client's relations win over those read from the text
                new.extracted = read_relations(new.text, known)
        vectors = self.embedder.embed([embedding_text(p.text) for p in prepared])
        for new, vector in zip(prepared, vectors, strict=True):
            new.vector = vector
        self._judge_supersession([new for new in prepared if new.type in SUPERSEDING_TYPES])
        self.flush_access()
        return self.store.add(prepared, client=client, model_id=self.embedder.model_id)

    def update(self, memory_id: str, patch: MemoryPatch | dict[str, Any], *, client: str | None = None) -> Memory:
        patch = patch if isinstance(patch, MemoryPatch) else MemoryPatch.model_validate(patch)
        if patch.is_empty():
            raise InvalidInput(f"nothing to update: give at least one of {', '.join(MemoryPatch.model_fields)}")
        if patch.type is not None:
            check_known_type(patch.type, self.custom_types)
        current = self.store.get_many([memory_id])[0]
        # The fields the patch gives, as validated (times already in stored form); those below need more.
        values: dict[str, Any] = {k: v for k, v in patch if v is not None and k not in _RESOLVED_ON_UPDATE}
        if patch.subject is not None:
            values["subject"] = normalize(patch.subject)
        if patch.parent_id is not None:
            values["parent_id"] = _checked_id(patch.parent_id)
            self.store.get_many([patch.parent_id])
        # Emptied fields go to the store like any change: a new version, old -> None in history.
        values.update(dict.fromkeys(patch.clear))
        new_type = values.get("type", current.type)
        if patch.state is not None or new_type != current.type:
            # A change of type resets the state to the new type's default unless one is given.
            requested = patch.state if patch.state is not None else None
            try:
                values["state"] = check_state(new_type, requested)
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
        relations = (
            _relation_dicts(patch.relations) if patch.relations is not None else [r.model_dump() for r in current.relations]
        )
        if patch.relations is not None:
            values["relations"] = relations
        if patch.text is not None or patch.entities is not None or patch.relations is not None:
            # Entities follow the text: names found in the old text that are gone from the new one go too.
            given = patch.entities if patch.entities is not None else self._client_entities(current)
            text = values.get("text", current.text)
            values["entities"] = resolve_entities(text, given, relations, extract_entities(text, self.knows_entity()))
        vector = None
        if "text" in values and values["text"] != current.text:
            self.ensure_vectors()
            vector = self.embedder.embed_one(embedding_text(values["text"]))
        self.flush_access()
        extracted = None  # relations read from the text follow it, unless the client's relations stand
        if patch.relations:
            extracted = []
        elif patch.relations is not None or ("text" in values and values["text"] != current.text and not relations):
            extracted = read_relations(values.get("text", current.text), self.knows_entity())
        self.store.update(
            memory_id,
            values,
            vector=vector,
            model_id=self.embedder.model_id if vector is not None else None,
            client=client,
            extracted=extracted,
        )
        return self.store.get_many([memory_id])[0]

    def _judge_supersession(self, items: Sequence[NewMemory]) -> None:
        """Set what each new fact or preference does to the live memories of its type and role
        (``memory.supersession``): the one it restates (``item.restates``), else the ones it
        replaces (``item.supersede``), with reasons.

        Memories with the same subject key are found by the store in its write transaction; here
        only close ones (cosine of at least SUPERSEDE_SIMILARITY) are read and judged. One
        product of the whole batch with the mirror finds them: a per-item pass over every
        memory of the type made each add grow with the cube.
        """
        if not items:
            return
        vectors = [item.vector for item in items if item.vector is not None]
        assert len(vectors) == len(items), "every new memory is embedded before it is judged"
        if isinstance(self.store, CubeStore):
            self.store.sync_mirror(self.mirror)
            close_rows = self.mirror.close_active(np.stack(vectors), SUPERSEDE_SIMILARITY)
        else:
            close_rows = self.store.close_active(np.stack(vectors), SUPERSEDE_SIMILARITY)
        wanted = sorted({row_id for close in close_rows for row_id in close})
        if not wanted:
            return
        found = self.store.judging_rows(wanted)
        for item, close in zip(items, close_rows, strict=True):
            if close:
                self._judge_one(item, close, [row for row in found if row[0] in close])

    def _judge_one(self, item: NewMemory, similarity: dict[int, float], found: Sequence[tuple[Any, ...]]) -> None:
        new = Candidate(text=item.text, type=item.type, role=item.role, subject=item.subject, entities=tuple(item.entities))
        restated: tuple[float, str, str] | None = None
        for row_id, memory_id, text, type_, role, subject, entities in found:
            if type_ != item.type or role != item.role:
                continue  # only a memory of the same type and role can be replaced or restated
            if item.subject is not None and subject != item.subject:
                continue  # with a key, the client decides: other keys and unkeyed memories are left alone
            old = Candidate(text=text, type=type_, role=role, subject=subject, entities=tuple(entities))
            cosine = similarity[row_id]
            decision = decide(new, old, cosine)
            if decision.verdict == "restate" and (restated is None or cosine > restated[0]):
                restated = (cosine, memory_id, decision.reason)
            elif decision.verdict == "replace":
                item.supersede.append(memory_id)
                item.reasons[memory_id] = decision.reason
        if restated is not None:
            item.restates = restated[1]
            item.reasons = {restated[1]: restated[2]}
            item.supersede = []

    def _client_entities(self, memory: Memory) -> list[str]:
        """Entities of a memory that did not come from its text or relations: the ones the client named."""
        derived = {normalize(n) for n in extract_entities(memory.text, self.knows_entity())}
        derived |= {normalize(r.subject) for r in memory.relations} | {normalize(r.object) for r in memory.relations}
        return [e for e in memory.entities if normalize(e) not in derived]

    def archive(self, ids: Sequence[str], *, client: str | None = None) -> list[Memory]:
        _check_count(ids)
        return self.store.set_status(ids, to="archived", allowed_from=("active",), op="archive", client=client)

    def restore(self, ids: Sequence[str], *, client: str | None = None) -> list[Memory]:
        _check_count(ids)
        return self.store.set_status(ids, to="active", allowed_from=("archived",), op="restore", client=client)

    def delete(self, ids: Sequence[str], *, purge: bool = False, client: str | None = None) -> list[str]:
        _check_count(ids)
        self.flush_access()
        if purge:
            self.store.get_many(ids)  # unknown ids fail before anything is erased
            self.store.purge(ids, client=client)
        else:
            self.store.set_status(ids, to="deleted", allowed_from=("active", "archived"), op="delete", client=client)
        return list(ids)

    # -- reads ----------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Memory]:
        _check_count(ids)
        memories = self.store.get_many(ids)
        self._note_access(self._row_ids(ids))
        return memories

    def search(self, query: SearchQuery | dict[str, Any], *, now: Any = None) -> SearchResult:
        """Find memories: the one search path, whoever asks (MCP tool, CLI, prompts, scheduler, library).

        The query's task and time words are read against ``now`` (default: the current time)
        and the ranking passes run by ``memory.retrieval.planning``; ``query.context`` > 0 adds
        each hit's thread neighbours.
        """
        q = query if isinstance(query, SearchQuery) else SearchQuery.model_validate(query)
        moment = parse_moment(now, field="now") if now is not None else None
        found = planning.answer(q, self._ranked, moment)
        around = self.context(found.hits, q.context, include_archived=q.include_archived) if q.context else []
        return SearchResult(
            cube=self.name,
            query=q.query,
            hits=found.hits,
            context=around,
            time=found.time,
            time_applied=found.time_applied,
            tasks=found.tasks,
            relevance=found.relevance,
            below_floor=found.below_floor,
        )

    def read_ranking_from(self, source: SearchSource, vectors: VectorScores) -> None:
        """Rank searches on another engine's copy of this cube (the PostgreSQL store: ``memcube migrate``).

        Only the ranking's reads move; the hits' row ids are then that engine's, so reads are not
        counted against this folder's rows. The first step of serving a cube from the store
        (issue 28), and how bench/locomo.py --engine postgres compares the engines' searches.
        """
        self._ranking_reads = (source, vectors)
        self._reads_own_rows = False

    def _ranked(self, q: SearchQuery) -> list[SearchHit]:
        """The hybrid ranking alone (no time words): ``retrieval.search.hybrid_search`` on this cube."""
        own = self._reads_own_rows
        if own and "vector" in q.signals:
            self.ensure_vectors()
        source: SearchSource
        vectors: VectorScores
        if self._ranking_reads is not None:
            source, vectors = self._ranking_reads
        else:
            assert isinstance(self.store, CubeStore)
            source, vectors = self.store, self.mirror
        hits, row_ids = hybrid_search(
            source,
            vectors,
            q,
            self.embedder.embed_one,
            self.aliases() if "entity" in q.signals else None,
            reads=self.embedder.reads_words,
        )
        if own:  # another engine's row ids are not this folder's
            self._note_access(row_ids)
        return hits

    def context(self, hits: Sequence[SearchHit], turns: int = 1, *, include_archived: bool = False) -> list[ContextTurn]:
        """The memories around each hit in its thread (same session_id, in time order), ``turns`` on each side."""
        if not 0 <= turns <= MAX_CONTEXT_TURNS:
            raise InvalidInput(f"context turns must be between 0 and {MAX_CONTEXT_TURNS}")
        return context_turns(self.store, list(hits), turns, include_archived=include_archived)

    def history(self, memory_id: str) -> list[VersionEntry]:
        return [VersionEntry(**entry) for entry in self.store.history(memory_id)]

    def graph(self, entity: str, depth: int = 1, to: str | None = None) -> EntityView:
        """An entity's relations, neighbours and memories; with ``to``, only the relations between the
        two ("who is Carol to Bob"): current ones first, closed ones with their validity."""
        if depth not in (1, 2):
            raise InvalidInput("depth must be 1 or 2")
        if not entity or not normalize(check_encodable(entity, "entity")):
            raise InvalidInput("give an entity name, e.g. 'Alice' or '#project-x'")
        if to is not None and not normalize(check_encodable(to, "to")):
            raise InvalidInput("give `to` as an entity name, e.g. 'Bob', or leave it out")
        self.sync_graph()
        view = self._entity_view(entity, depth)
        if to is not None:
            here = {normalize(view.entity), *(normalize(a) for a in view.aliases)}
            there = set(self.aliases().group(normalize(to))) | {normalize(to)}
            if not here.isdisjoint(there):
                raise InvalidInput("entity and to name the same entity")
            if not any(self.graph_store.has_entity(name) for name in there):
                raise NotFound(f"no entity {to!r} in this cube's graph")
            view.relations = [
                r
                for r in view.relations
                if {normalize(r.subject), normalize(r.object)} & here and {normalize(r.subject), normalize(r.object)} & there
            ]
            view.depth = 1
        texts = {m.id: m.text for m in self.store.get_many([m.id for m in view.memories])} if view.memories else {}
        for ref in view.memories:
            text = texts.get(ref.id, "")
            ref.text = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
        return view

    def _entity_view(self, entity: str, depth: int) -> EntityView:
        """The graph view of an entity and of every other name of it (its alias group), as one view."""
        key = normalize(entity)
        group = self.aliases().group(key)
        views: list[EntityView] = []
        for name in group:
            try:
                # The name as asked for, not its key: keys are not always stable under a second normalize.
                views.append(self.graph_store.entity(entity if name == key else name, depth))
            except NotFound:
                continue
        if not views:
            raise NotFound(
                f"no entity {entity!r} in this cube's graph; entities come from memory_add's entities, relations and names in the text"
            )
        first = views[0]
        names = {normalize(v.entity) for v in views}
        relations = {(r.subject, r.predicate, r.object, r.source_memory): r for v in views for r in v.relations}
        neighbours = dict.fromkeys(n for v in views for n in v.neighbours if normalize(n) not in names)
        memories = {m.id: m for v in views for m in v.memories}
        return EntityView(
            entity=first.entity,
            depth=depth,
            aliases=[v.entity for v in views[1:]],
            relations=sorted(relations.values(), key=lambda r: not r.current),  # current ones first
            neighbours=list(neighbours),
            memories=sorted(memories.values(), key=lambda m: m.id, reverse=True),
        )

    # -- entity aliases ---------------------------------------------------------------

    def alias_choices(self) -> AliasChoices:
        raw = self.store.meta(ALIAS_META)
        return AliasChoices.model_validate_json(raw) if raw else AliasChoices()

    def aliases(self) -> AliasTable:
        """The cube's alias table, rebuilt when the set of entity keys or an alias choice changed.

        The keys are followed incrementally (``CubeStore.entity_key_delta``): after an add that
        names no new entity, the table stands as it was.
        """
        choices_raw = self.store.meta(ALIAS_META)
        cached = self._aliases
        since = cached.state if cached is not None and cached.choices_raw == choices_raw else None
        state, keys, whole = self.store.entity_key_delta(since)
        if cached is not None and since is not None and not whole and keys <= cached.keys:
            cached.state = state
            return cached.table
        known = keys if whole or cached is None else cached.keys | keys
        table = build_aliases(known, self.alias_choices())
        self._aliases = _AliasCache(state=state, choices_raw=choices_raw, keys=known, table=table)
        return table

    def knows_entity(self) -> Callable[[str], bool]:
        """A cheap check whether this cube knows an entity key: one a memory names, an alias of
        one, or a first name or surname of a full name (what ``extract_entities``'s ``known`` takes)."""
        table = self.aliases()
        keys = self._aliases.keys if self._aliases is not None else set()
        return lambda key: key in keys or key in table.to_full or key in table.short_index

    def alias(self, name: str, entity: str, *, split: bool = False) -> AliasView:
        """Merge ``name`` into ``entity`` (it stands for it), or with ``split`` keep them apart."""
        alias_key, entity_key = normalize(check_encodable(name, "name")), normalize(check_encodable(entity, "entity"))
        if not alias_key or not entity_key:
            raise InvalidInput("give two entity names, e.g. name='Bob' and entity='Robert Smith'")
        if alias_key == entity_key:
            raise InvalidInput("name and entity are the same entity")
        known = self.store.entity_keys()
        for label, key in (("name", alias_key), ("entity", entity_key)):
            if key not in known and not (split and label == "name"):
                raise NotFound(f"no entity {key!r} in this cube (check the spelling with memory_graph or search)")
        choices = self.alias_choices()
        if split:
            choices.merged = {a: f for a, f in choices.merged.items() if not (a == alias_key and f == entity_key)}
            if (alias_key, entity_key) not in choices.split:
                choices.split.append((alias_key, entity_key))
        else:
            choices.split = [(a, f) for a, f in choices.split if (a, f) != (alias_key, entity_key)]
            choices.merged[alias_key] = entity_key
        self.store.save_meta(ALIAS_META, choices.model_dump_json())
        return self.alias_view(entity_key)

    def alias_view(self, name: str) -> AliasView:
        table = self.aliases()
        key = normalize(name)
        return AliasView(entity=table.canonical(key), names=table.group(key), ambiguous=table.ambiguous.get(key, []))

    def vocabulary(self) -> dict[str, list[str]]:
        """The names a client may complete: entities (display names), roles and tags, each sorted."""
        roles, tags = self.store.roles_and_tags()
        return {"entity": sorted(self.store.entity_keys().values(), key=str.casefold), "role": roles, "tag": tags}

    def recent(self, limit: int = 20) -> list[Memory]:
        return self.store.recent(limit)

    def browse(
        self, browse: BrowseFilter | dict[str, Any] | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> MemoryPage:
        """A page of memories, newest first, for people browsing them (the web UI).

        ``cursor`` is the ``next`` of the previous page; paging stays an index range read at any depth.
        """
        flt = browse if isinstance(browse, BrowseFilter) else BrowseFilter.model_validate(browse or {})
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        memories, after = self.store.page(flt, after=decode_cursor(cursor), limit=limit)
        return MemoryPage(cube=self.name, memories=memories, next=encode_cursor(after))

    def count(self, browse: BrowseFilter | dict[str, Any] | None = None) -> int:
        flt = browse if isinstance(browse, BrowseFilter) else BrowseFilter.model_validate(browse or {})
        return self.store.count_matching(flt)

    def facets(self) -> dict[str, list[str]]:
        """The types, roles and tags in use (at most 500 tags), for filter menus."""
        return self.store.facets()

    def activity(self, limit: int = 50) -> ClientActivity:
        """Who changed what: changes per client and operation, the latest changes, refused calls."""
        return ClientActivity(
            cube=self.name,
            by_client=self.store.client_activity(),
            recent=self.store.recent_changes(limit),
            denials=self.store.denials(limit),
        )

    def stats(self) -> CubeStats:
        counts = self.store.counts()
        return CubeStats(
            cube=self.name,
            active=counts["active"],
            archived=counts["archived"],
            deleted=counts["deleted"],
            entities=counts["entities"],
            relations=counts["relations"],
            embedding_model=self.store.meta("embedding_model"),
            schema_version=self.store.schema_version,
            graph_pending=counts["graph_pending"],
            path=str(self.folder),
        )

    # -- derived stores -------------------------------------------------------------

    def sync_graph(self) -> int:
        """Apply queued graph changes. Raises ``Unavailable`` when another process holds the graph."""
        applied = 0
        while batch := self.graph_store.apply_outbox(self.store):
            applied += batch
        return applied

    def try_sync_graph(self) -> int:
        """``sync_graph`` for background work: a failure is logged and left queued, never raised."""
        try:
            return self.sync_graph()
        except Unavailable as exc:
            log.warning("cube %s: graph not updated yet: %s", self.name, exc)
        except Exception:  # the queued work stays in the outbox; doctor --rebuild-graph is the way out
            log.exception("cube %s: applying queued graph work failed; it stays queued", self.name)
        return 0

    def rebuild_graph(self) -> int:
        return self.graph_store.rebuild(self.store)

    def read_old_relations(self, batch: int = 500) -> int:
        """Read the relations of memories written before texts were read for them (schema 11), for
        ``doctor``; their graph part follows through the outbox. Returns how many texts were read."""
        known = self.knows_entity()
        total = 0
        while True:
            rows, found = self.store.unread_relations(batch)
            read = read_relations_many([text for _, text in rows], known)
            self.store.save_read_relations(list(zip([r for r, _ in rows], read, strict=True)), done=found < batch)
            total += len(rows)
            if found < batch:
                return total

    def try_merge_fulltext(self) -> bool:
        """Merge the keyword indexes once the cube has grown enough since the last merge, for work
        done when the cube is quiet (``memory.store.fulltext_merge``); a failure is logged, never raised."""
        try:
            return self.store.merge_fulltext()
        except Exception:  # the indexes stay as they were: correct, only slower to read
            log.exception("cube %s: merging the keyword indexes failed", self.name)
            return False

    def flush_access(self) -> None:
        with self._access_lock:
            pending, self._pending_access = self._pending_access, Counter()
        if pending:
            self.store.add_access(dict(pending))

    def _note_access(self, row_ids: Sequence[int]) -> None:
        # Counted in memory and written with the next write: a search stays read-only and fast.
        with self._access_lock:
            self._pending_access.update(row_ids)

    def _row_ids(self, ids: Sequence[str]) -> list[int]:
        return self.store.row_ids_of(ids)

    def vector_of(self, memory_id: str) -> np.ndarray | None:
        return self.store.vector_of(memory_id)

    # -- goals, tasks and the profile -------------------------------------------------

    def progress(
        self,
        memory_id: str,
        *,
        state: str | None = None,
        feedback: FeedbackInput | dict[str, Any] | None = None,
        due_at: Any = None,
        client: str | None = None,
    ) -> Memory:
        """Move a task or goal to another state and/or log what was tried and what happened."""
        entry = feedback if isinstance(feedback, FeedbackInput) or feedback is None else FeedbackInput.model_validate(feedback)
        if state is None and entry is None and due_at is None:
            raise InvalidInput("nothing to record: give a state, a feedback entry ({tried, result}) or a due_at")
        current = self.store.get_many([memory_id])[0]
        if current.type not in STATES:
            raise InvalidInput(f"memory {memory_id} is a {current.type}; progress is for goals and tasks")
        if entry is not None:
            if not entry.tried and not entry.result:
                raise InvalidInput("a feedback entry needs at least one of tried (what was done) or result (what came of it)")
            at = stored_from_input(entry.at, field="feedback.at") or now_stored()
            self.store.add_feedback(memory_id, FeedbackEntry(at=at, tried=entry.tried, result=entry.result), client=client)
        patch: dict[str, Any] = {}
        if state is not None:
            patch["state"] = state
        if due_at is not None:
            patch["due_at"] = due_at
        if patch:
            return self.update(memory_id, patch, client=client)
        return self.store.get_many([memory_id])[0]

    def profile(self, *, role: str | None = None, budget_tokens: int = DEFAULT_BUDGET_TOKENS, now: Any = None) -> Profile:
        if not 100 <= budget_tokens <= 20_000:
            raise InvalidInput("budget_tokens must be between 100 and 20000")
        if role is not None:
            check_encodable(role, "role")
        moment = parse_moment(now, field="now") if now is not None else None
        profile = build_profile(self.store, role=role, budget_tokens=budget_tokens, now=moment)
        self._note_access(self._row_ids([line.id for section in profile.sections for line in section.lines]))
        return profile

    def tasks(self, *, role: str | None = None, include_done: bool = True) -> list[Memory]:
        """Goals and tasks with their state and feedback, open ones first."""
        if role is not None:
            check_encodable(role, "role")
        states = (
            ("todo", "in_progress", "blocked", "done", "active", "achieved", "dropped")
            if include_done
            else ("todo", "in_progress", "blocked", "active")
        )
        return self.store.goals_and_tasks(states, role)
