"""The pydantic models at the memory API's boundary: what goes in, what comes out.

Limits live here too, so that every entry point (MCP tools, CLI, library calls)
rejects the same bad input with the same message.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

MAX_TEXT_CHARS = 32_000
MAX_BATCH = 500
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_ENTITIES = 64
MAX_ENTITY_CHARS = 128
MAX_RELATIONS = 64
MAX_METADATA_BYTES = 16_384
MAX_QUERY_CHARS = 2_000
MAX_LIMIT = 100
MAX_IDS = 500
MAX_CONTEXT_TURNS = 5

MemoryStatus = Literal["active", "archived", "deleted"]

# Types with a life cycle, and the states each may be in (the first is the default).
STATES: dict[str, tuple[str, ...]] = {
    "goal": ("active", "achieved", "dropped"),
    "task": ("todo", "in_progress", "blocked", "done"),
}
# The types every cube knows; a home declares more in config.toml ([types] custom = [...]).
KNOWN_TYPES = ("note", "fact", "event", "preference", "goal", "task")


def check_known_type(type_: str, custom: tuple[str, ...] | frozenset[str] = ()) -> str:
    """``type_`` when it is known or declared; otherwise an error that suggests the near miss."""
    if type_ in KNOWN_TYPES or type_ in custom:
        return type_
    from memory.errors import InvalidInput
    from memory.suggest import near_miss

    allowed = [*KNOWN_TYPES, *sorted(custom)]
    raise InvalidInput(
        f"unknown type {type_!r}{near_miss(type_, allowed)}; types are {', '.join(allowed)} "
        '(declare your own in config.toml: [types] custom = ["recipe"])'
    )


# Types where a newer memory about the same subject (and role) replaces the older one.
SUPERSEDING_TYPES = ("preference", "fact")
MAX_FEEDBACK_CHARS = 4_000
MemoryKind = Literal["plaintext", "activation", "parametric"]

_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_CHARS)]
EntityName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ENTITY_CHARS)]
MemoryText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)]
Moment = datetime | date | str
# The types of the fields a client sets, written once for what adds a memory and what changes one.
TagList = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
EntityList = Annotated[list[EntityName], Field(max_length=MAX_ENTITIES)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
RoleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
SubjectName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Label = Annotated[str, StringConstraints(max_length=128)]  # user, agent and session ids
SourceText = Annotated[str, StringConstraints(max_length=256)]

# The optional fields a change can empty again (``MemoryPatch.clear``). The others always hold a
# value (text, type, importance, confidence; a goal's or task's state) or are emptied by an empty
# value ([] or {}); ``_NOT_CLEARABLE`` says which, for the error.
CLEARABLE_FIELDS = ("occurred_at", "due_at", "role", "subject", "parent_id")

# What each field a client sets means, said once: the models below, the MCP tools' parameters
# and the CLI's help all read it (``described``).
FIELD_DOCS: dict[str, str] = {
    "text": "what to remember, as a self-contained statement",
    "type": "note, fact, event, preference, goal, task (or a type declared in the home's config.toml [types] custom)",
    "tags": "labels to find it by",
    "entities": "people, places, projects... the memory is about",
    "relations": "facts between entities: {subject, predicate, object}",
    "occurred_at": "when it happened, ISO 8601 (e.g. 2023-05-08 or 2023-05-08T13:56:00Z)",
    "metadata": "a JSON object of extra fields",
    "importance": "how much it matters, 0 to 1 (default 0.5)",
    "confidence": "how sure it is, 0 to 1 (default 1)",
    "source": "where it came from (a file, a URL, a tool)",
    "user_id": "the user it belongs to",
    "agent_id": "the agent that wrote it",
    "session_id": "the conversation it came from: memories of one session form a thread, and each is searched with its neighbours",
    "role": "the part of the user's life it holds in: work, home, team lead...",
    "subject": "preferences and facts: what it is about (e.g. 'coffee', 'editor theme'); "
    "a newer one on the same subject and role supersedes the older",
    "state": "; ".join(f"{kind}s: {'/'.join(states)}" for kind, states in STATES.items()),
    "due_at": "tasks: when it is due, ISO 8601",
    "parent_id": "tasks: the goal it serves (a memory id)",
    "clear": f"optional fields to empty: any of {', '.join(CLEARABLE_FIELDS)} "
    '(e.g. ["due_at"]); the old value stays in the history. Leaving a field out, or giving it null, keeps it',
}

_NOT_CLEARABLE = {
    "text": "every memory has a text; give the corrected text instead",
    "type": "every memory has a type; give another type instead",
    "importance": "give a value from 0 to 1 instead (0.5 is the default)",
    "confidence": "give a value from 0 to 1 instead (1 is the default)",
    "state": "a goal or task is always in one of its states (give another one), and other types have none",
    "tags": "give tags: [] to remove every tag",
    "entities": "give entities: [] to remove the entities you named",
    "relations": "give relations: [] to remove every relation",
    "metadata": "give metadata: {} to remove it",
}
# A name in ``clear``: any string (``check_clear`` says what is wrong with a bad one, in plain
# words), shown to clients as the list of clearable fields.
ClearableName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(CLEARABLE_FIELDS)})]


# What each search parameter means, said once: ``SearchQuery``, the search tool and the CLI read it.
SEARCH_DOCS: dict[str, str] = {
    "query": "what you are looking for, in plain words",
    "limit": "the most hits to return",
    "types": "only these types",
    "tags": "only memories with at least one of these tags",
    "since": "only memories that occurred at or after this ISO date-time",
    "until": "only memories that occurred at or before this ISO date-time",
    "include_archived": "search archived memories too",
    "context": "also return this many memories before and after each hit in its session "
    "(in `context`, apart from the ranked hits)",
    "states": "only goals and tasks in these states: "
    + ", ".join([*STATES["task"], *STATES["goal"]])
    + ", or open (every state still to do)",
    "due_before": "only memories due at or before this ISO date-time",
    "due_after": "only memories due at or after this ISO date-time",
    "overdue": "only open tasks and goals whose due date has passed (relative to now)",
    "parents": "only tasks that serve one of these goals (memory ids)",
    "include_weak": "also return hits below the relevance floor (confidence low)",
}


def filter_described(name: str, **constraints: Any) -> Any:
    """A ``Field`` with the description of the search parameter ``name`` (``SEARCH_DOCS``)."""
    return Field(description=SEARCH_DOCS[name], **constraints)


def described(name: str, **constraints: Any) -> Any:
    """A ``Field`` with the description of ``name`` (``FIELD_DOCS``), for a model field or a tool
    parameter: ``role: Annotated[str | None, described("role")] = None``."""
    return Field(description=FIELD_DOCS[name], **constraints)


def _check_type(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not _TYPE_PATTERN.match(value):
        raise ValueError(
            "type must be a short lower-case word such as fact, preference, event, task, note "
            "(letters, digits, '-' or '_', at most 32 characters)"
        )
    return value


def _check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        encoded = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        raise ValueError("metadata must be a JSON object of plain values") from None
    if len(encoded.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is larger than {MAX_METADATA_BYTES} bytes of JSON; store less or put it in the text")
    return value


def check_encodable(value: str, field: str) -> str:
    """Text that SQLite, Kuzu and JSON can all hold: valid Unicode, no lone surrogates."""
    from memory.errors import InvalidInput

    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} is not valid Unicode text (it holds a lone surrogate); send UTF-8 text") from None
    return value


def normalize_state(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip().lower().replace(" ", "_").replace("-", "_")


def check_state(type_: str, state: str | None) -> str | None:
    """The state a memory of ``type_`` is in: validated, or the type's default."""
    allowed = STATES.get(type_)
    if allowed is None:
        if state is not None:
            raise ValueError(f"only {', '.join(STATES)} memories have a state; a {type_} does not")
        return None
    state = normalize_state(state) or allowed[0]
    if state not in allowed:
        raise ValueError(f"a {type_}'s state is one of {', '.join(allowed)} (got {state!r})")
    return state


# States in which a goal or task still asks for something: "open".
OPEN_STATES = ("todo", "in_progress", "blocked", "active")


def expand_states(values: list[str] | None) -> list[str] | None:
    """Search filter states, normalised and checked; "open" stands for every state still to do."""
    if not values:
        return None
    known = {s for states in STATES.values() for s in states}
    out: dict[str, None] = {}
    for value in values:
        state = normalize_state(value) or ""
        if state == "open":
            out.update(dict.fromkeys(OPEN_STATES))
            continue
        if state not in known:
            from memory.suggest import near_miss

            hint = near_miss(state, [*sorted(known), "open"])
            raise ValueError(f"unknown state {state!r}{hint}; states are {', '.join(sorted(known))} or open")
        out[state] = None
    return list(out)


def _check_moment(value: Any) -> Any:
    """Reject a date that cannot be read at validation time, before anything is opened or written."""
    if value is None:
        return None
    from memory.errors import InvalidInput
    from memory.timeutil import stored_from_input

    try:
        return stored_from_input(value, field="time")
    except InvalidInput as exc:
        raise ValueError(str(exc).replace("time ", "", 1)) from None


def check_clear(names: list[str], given: dict[str, Any]) -> list[str]:
    """The fields a patch empties: each clearable, none also given a value in ``given``."""
    for name in names:
        if name in _NOT_CLEARABLE:
            raise ValueError(f"{name} cannot be cleared: {_NOT_CLEARABLE[name]}")
        if name not in CLEARABLE_FIELDS:
            from memory.suggest import near_miss

            hint = near_miss(name, CLEARABLE_FIELDS)
            raise ValueError(f"no field {name!r} to clear{hint}; clearable fields are {', '.join(CLEARABLE_FIELDS)}")
        if given.get(name) is not None:
            raise ValueError(f"{name} is both given a value and cleared; do one or the other")
    return list(dict.fromkeys(names))


def _dedupe(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    seen: dict[str, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


class Relation(BaseModel):
    """A fact about two entities, e.g. ``{subject: "Alice", predicate: "works_at", object: "Acme"}``."""

    model_config = ConfigDict(extra="forbid")

    subject: EntityName
    predicate: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    object: EntityName
    valid_from: Moment | None = None
    valid_to: Moment | None = None

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _valid_moment(cls, value: Any) -> Any:
        return _check_moment(value)


RelationList = Annotated[list[Relation], Field(max_length=MAX_RELATIONS)]


class _MemoryFields(BaseModel):
    """Checks shared by what adds a memory and what changes one."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("type", check_fields=False)
    @classmethod
    def _valid_type(cls, value: str | None) -> str | None:
        return _check_type(value)

    @field_validator("metadata", check_fields=False)
    @classmethod
    def _valid_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_metadata(value)

    @field_validator("tags", "entities", check_fields=False)
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return _dedupe(value)

    @field_validator("occurred_at", "due_at", check_fields=False)
    @classmethod
    def _valid_moment(cls, value: Any) -> Any:
        return _check_moment(value)


class MemoryInput(_MemoryFields):
    """One memory to add."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[MemoryText, described("text")]
    type: Annotated[str, described("type")] = "note"
    tags: Annotated[TagList, described("tags")] = []
    entities: Annotated[EntityList, described("entities")] = []
    relations: Annotated[RelationList, described("relations")] = []
    occurred_at: Annotated[Moment | None, described("occurred_at")] = None
    metadata: Annotated[dict[str, Any], described("metadata")] = {}
    importance: Annotated[Fraction, described("importance")] = 0.5
    confidence: Annotated[Fraction, described("confidence")] = 1.0
    source: Annotated[SourceText | None, described("source")] = None
    user_id: Annotated[Label | None, described("user_id")] = None
    agent_id: Annotated[Label | None, described("agent_id")] = None
    session_id: Annotated[Label | None, described("session_id")] = None
    role: Annotated[RoleName | None, described("role")] = None
    subject: Annotated[SubjectName | None, described("subject")] = None
    state: Annotated[str | None, described("state")] = None
    due_at: Annotated[Moment | None, described("due_at")] = None
    parent_id: Annotated[str | None, described("parent_id")] = None

    @model_validator(mode="after")
    def _valid_state(self) -> MemoryInput:
        self.state = check_state(self.type, self.state)
        return self


class MemoryPatch(_MemoryFields):
    """The fields of a memory to change; ``None`` leaves a field as it is, and a field named in
    ``clear`` is emptied (``None`` could not say both, and a client that sends every argument as
    null must not erase anything)."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[MemoryText | None, described("text")] = None
    type: Annotated[str | None, described("type")] = None
    tags: Annotated[TagList | None, described("tags")] = None
    entities: Annotated[EntityList | None, described("entities")] = None
    relations: Annotated[RelationList | None, described("relations")] = None
    occurred_at: Annotated[Moment | None, described("occurred_at")] = None
    metadata: Annotated[dict[str, Any] | None, described("metadata")] = None
    importance: Annotated[Fraction | None, described("importance")] = None
    confidence: Annotated[Fraction | None, described("confidence")] = None
    role: Annotated[RoleName | None, described("role")] = None
    subject: Annotated[SubjectName | None, described("subject")] = None
    state: Annotated[str | None, described("state")] = None
    due_at: Annotated[Moment | None, described("due_at")] = None
    parent_id: Annotated[str | None, described("parent_id")] = None
    clear: Annotated[list[ClearableName], described("clear", max_length=len(CLEARABLE_FIELDS) * 2)] = []

    @field_validator("clear")
    @classmethod
    def _valid_clear(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return check_clear(value, info.data)  # ``clear`` comes last: every other field is in ``info.data``

    def is_empty(self) -> bool:
        return not self.clear and all(getattr(self, f) is None for f in self.model_fields_set - {"clear"})


class RelationOut(BaseModel):
    subject: str
    predicate: str
    object: str
    valid_from: str | None = None
    valid_to: str | None = None


class FeedbackEntry(BaseModel):
    """One entry in a task's log."""

    at: str
    tried: str | None = None
    result: str | None = None
    client: str | None = None


class FeedbackInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tried: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_FEEDBACK_CHARS)] | None = Field(
        default=None, description="what was tried or done"
    )
    result: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_FEEDBACK_CHARS)] | None = Field(
        default=None, description="what came of it"
    )
    at: Moment | None = Field(default=None, description="when (default: now)")


class Memory(BaseModel):
    """A stored memory, as every reader sees it."""

    id: str
    cube: str
    text: str
    kind: MemoryKind = "plaintext"
    type: str
    status: MemoryStatus
    tags: list[str]
    entities: list[str]
    relations: list[RelationOut]
    source: str | None
    client: str | None
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    created_at: str
    updated_at: str
    occurred_at: str | None
    valid_from: str | None
    valid_to: str | None
    version: int
    importance: float
    confidence: float
    access_count: int
    last_access: str | None
    content_hash: str
    embedding_model: str | None
    metadata: dict[str, Any]
    role: str | None = None
    subject: str | None = None
    state: Annotated[str | None, described("state")] = None
    due_at: Annotated[str | None, described("due_at")] = None
    parent_id: Annotated[str | None, described("parent_id")] = None
    supersedes: str | None = Field(default=None, description="the older memory this one replaced")
    superseded_by: str | None = Field(default=None, description="the newer memory that replaced this one")
    feedback: list[FeedbackEntry] = Field(default_factory=list, description="a task's log: what was tried, what happened")


class Superseded(BaseModel):
    id: str = Field(description="the older memory, now archived (memory_restore brings it back)")
    reason: str = Field(description="why the new memory replaces it")


class AddOutcome(BaseModel):
    id: str
    created: bool = Field(
        description="false when the memory was already stored (same text, or restated in other words) and its id is returned"
    )
    superseded: list[Superseded] = Field(
        default_factory=list, description="older memories this one replaced and archived, with the reason"
    )
    restated: str | None = Field(
        default=None,
        description="set when the text restated a live fact or preference: that memory (the id) was confirmed instead of adding a copy",
    )


class SignalScore(BaseModel):
    rank: int = Field(description="1-based rank of this memory in that signal's own list")
    score: float = Field(
        description="the signal's raw score: BM25 (keyword, context; higher is better), cosine (vector), "
        "entity specificity (entity), 1 for a match (speaker, exact)"
    )


class SearchHit(BaseModel):
    id: str
    text: str
    score: float = Field(description="fused score (weighted sum of the signals' normalised scores); higher is better")
    type: str
    tags: list[str]
    occurred_at: str | None
    created_at: str
    status: MemoryStatus
    state: str | None = Field(default=None, description="goals and tasks: their state")
    due_at: str | None = Field(default=None, description="tasks: when it is due")
    parent_id: str | None = Field(default=None, description="tasks: the goal it serves")
    # A word, unlike ``Memory.confidence`` (a number: how sure the memory itself is). The field keeps
    # its name because tool output schemas are a contract; the description tells the two apart.
    confidence: str | None = Field(
        default=None,
        description="how well it matches the query, for a person: high, medium or low (see relevance in the result); "
        "not the memory's own confidence, the number from 0 to 1 that memory_get gives",
    )
    outside_window: bool = Field(
        default=False,
        description="true when the query named a time and this memory lies outside it: the window held nothing relevant, "
        "so the best matches nearest it came back instead (time is a strong preference, not a wall)",
    )
    signals: dict[str, SignalScore] = Field(
        description="why this memory was found: keyword (its words), context (words of its thread neighbours), "
        "vector (meaning), entity (an entity the query names), speaker (said by one of them), exact (its text is the query), "
        "asks (a small penalty: the memory ends with a question, so it asks rather than tells), "
        "length (a long text's match signals scaled by this factor, under 1)"
    )
    # How much of its query the cube can speak to, beyond the hit's signals: set by the search, read by
    # the relevance floor (memory.retrieval.relevance), not part of the output. 1 and 1: nothing known against it.
    _cover: tuple[float, float] = PrivateAttr(default=(1.0, 1.0))

    @property
    def query_cover(self) -> tuple[float, float]:
        """(the share of the query's content words some memory of the cube holds, the share that carry meaning:
        a word the embedding model reads as letters and no memory holds carries none; ``search.query_cover``)."""
        return self._cover

    def cover_query(self, held: float, meaning: float) -> None:
        self._cover = (held, meaning)


class ContextTurn(BaseModel):
    """A neighbour of a hit in its thread (memories sharing a session_id, in time order), returned beside the hits."""

    id: str
    text: str
    occurred_at: str | None
    session_id: str | None
    context_of: str = Field(description="the id of the hit this memory surrounds")
    offset: int = Field(description="position relative to that hit: -1 just before, 1 just after")


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS), filter_described("query")
    ]
    limit: Annotated[int, filter_described("limit", ge=1, le=MAX_LIMIT)] = 10
    types: Annotated[list[str] | None, filter_described("types")] = None
    tags: Annotated[list[str] | None, filter_described("tags")] = None
    since: Annotated[Moment | None, filter_described("since")] = None
    until: Annotated[Moment | None, filter_described("until")] = None
    include_archived: Annotated[bool, filter_described("include_archived")] = False
    signals: tuple[Literal["vector", "keyword", "context", "entity"], ...] = ("vector", "keyword", "context", "entity")
    context: Annotated[int, filter_described("context", ge=0, le=MAX_CONTEXT_TURNS)] = 0
    states: Annotated[list[str] | None, filter_described("states")] = None
    due_before: Annotated[Moment | None, filter_described("due_before")] = None
    due_after: Annotated[Moment | None, filter_described("due_after")] = None
    overdue: Annotated[bool, filter_described("overdue")] = False
    parents: Annotated[list[str] | None, filter_described("parents")] = None
    include_weak: Annotated[bool, filter_described("include_weak")] = False

    @field_validator("states")
    @classmethod
    def _valid_states(cls, value: list[str] | None) -> list[str] | None:
        return expand_states(value)

    @field_validator("due_before", "due_after")
    @classmethod
    def _valid_due(cls, value: Any) -> Any:
        return _check_moment(value)


class TaskFilter(BaseModel):
    """What a query's task words ("overdue", "open", "due next week") were taken to mean."""

    expression: str
    states: list[str] | None = None
    due_after: str | None = None
    due_before: str | None = None
    overdue: bool = False


class TimeWindow(BaseModel):
    """What a query's time words were taken to mean (reported back with the search)."""

    expression: str
    since: str | None = None
    until: str | None = None
    latest: bool = False


class SearchResult(BaseModel):
    """What a search returns, whoever asks: the MCP tool, the CLI, prompts, the scheduler, library users."""

    cube: str
    query: str
    hits: list[SearchHit]
    context: list[ContextTurn] = Field(
        default=[], description="with context > 0: the memories around each hit in its session, not ranked, not among the hits"
    )
    time: TimeWindow | None = Field(
        default=None, description="time words found in the query and the occurred_at window they were read as"
    )
    time_applied: bool = Field(
        default=False,
        description="false when that window held nothing relevant and the hits are the best matches nearest it (outside_window)",
    )
    tasks: TaskFilter | None = Field(
        default=None,
        description="task words found in the query (overdue, open, due next week...) and the filters they were read as",
    )
    relevance: str = Field(
        default="", description="how the hits were chosen against the relevance floor; says so when nothing relevant was found"
    )
    below_floor: int = Field(default=0, description="hits left out because they matched too weakly (include_weak returns them)")


class VersionEntry(BaseModel):
    version: int
    op: str = Field(description="add, update, archive, restore, delete or purge")
    at: str
    client: str | None
    changes: dict[str, dict[str, Any]] = Field(description="field -> {old, new}")


class GraphRelation(BaseModel):
    subject: str
    predicate: str
    object: str
    source_memory: str | None = Field(description="the memory that says so")
    valid_from: str | None = None
    valid_to: str | None = Field(default=None, description="when it stopped holding (a closed relation)")
    origin: str | None = Field(default=None, description="client: given with the memory; extracted: read from its text")
    invalidated_by: str | None = Field(default=None, description="the newer memory that ended it")
    current: bool = Field(default=True, description="whether it still holds")


class GraphMemoryRef(BaseModel):
    id: str
    text: str
    type: str


class EntityView(BaseModel):
    """An entity, its relations and the memories that mention it."""

    entity: str
    depth: int
    aliases: list[str] = Field(
        default_factory=list, description="other names of this entity followed too (a first name, a handle, merged names)"
    )
    relations: list[GraphRelation]
    neighbours: list[str] = Field(description="entities reached through relations or shared memories")
    memories: list[GraphMemoryRef]


class AliasView(BaseModel):
    """An entity's names: the full name search and the graph use, and every name that stands for it."""

    entity: str = Field(description="the full name (entity key) the names resolve to")
    names: list[str] = Field(description="the entity and its aliases, each followed by memory_graph and search")
    ambiguous: list[str] = Field(default_factory=list, description="when the name alone could mean several entities: which")


class CubeStats(BaseModel):
    cube: str
    active: int
    archived: int
    deleted: int
    entities: int
    relations: int
    embedding_model: str | None
    schema_version: int
    graph_pending: int = Field(description="graph changes not yet applied to Kuzu")
    path: str


class DamagedCube(BaseModel):
    """A cube listed with the others but that cannot be opened or read (issue 26)."""

    cube: str
    damaged: str = Field(description="why: what is wrong with its files; `memcube doctor` says more")
    path: str


class MemoryPage(BaseModel):
    """A page of memories for people browsing them; ``next`` fetches the following page."""

    cube: str
    memories: list[Memory]
    next: str | None = Field(default=None, description="cursor of the next page; null on the last page")


class ClientActivity(BaseModel):
    """Who wrote what in a cube, from its history, and which calls the access rules refused."""

    cube: str
    by_client: list[dict[str, Any]] = Field(description="{client, op, count, last} per client and operation")
    recent: list[dict[str, Any]] = Field(description="the latest changes: {memory_id, version, op, at, client}")
    denials: list[dict[str, Any]] = Field(description="refused calls: {at, client, action, need}")
