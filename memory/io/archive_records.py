"""What an archive's memory record must be before import stores it (issue 13).

Import used to copy an archive's fields into ``memories`` after checking little more
than their JSON type, so ``"tags": [1, {"a": 2}]`` or ``"importance": "high"`` was
stored and then broke every search, resource and graph sync of the cube. Now a record
goes through the very model ``memory_add`` uses (``MemoryInput``: types, limits,
dates) for what a person writes, through strict models for what only an archive carries
(id, status, timestamps, versions, feedback), and finally through the read model
(``Memory``) as the row it will become. A record that fails any of them is refused with
its line and the field; nothing is stored that a read path cannot serve.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from memory.entities import normalize
from memory.errors import InvalidInput
from memory.ids import is_memory_id
from memory.models import MAX_FEEDBACK_CHARS, Memory, MemoryInput, MemoryKind, MemoryStatus, RelationOut
from memory.timeutil import now_stored, stored_from_input

MAX_VERSIONS = 10_000
MAX_FEEDBACK = 1_000
MAX_VERSION = 1_000_000_000
MAX_CHANGES_BYTES = 200_000
# What MemoryInput checks: the fields a person or an assistant writes (the model is the one list).
CONTENT_FIELDS = tuple(MemoryInput.model_fields)
# Written by export, recomputed or not columns: accepted and ignored.
IGNORED_FIELDS = ("cube", "content_hash", "embedding_model", "row_id", "seq")
ShortText = Annotated[str, StringConstraints(max_length=256)]


def _moment(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO 8601 date-time string")
    try:
        return stored_from_input(value, field=field)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


def _memory_id(value: Any) -> str | None:
    if value is None:
        return None
    if not is_memory_id(value):
        raise ValueError("must be a memory id (mem_ followed by 26 characters)")
    return value


class ArchivedVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: Annotated[int, Field(ge=1, le=MAX_VERSION)]
    op: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]  # pydantic's (Rust) regex: "$" is the very end
    at: str
    client: ShortText | None = None
    changes: dict[str, dict[str, Any]] = {}

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        return _moment(value, "at") or value

    @field_validator("changes")
    @classmethod
    def _bounded(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        try:
            size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        except (TypeError, ValueError, UnicodeEncodeError):
            raise ValueError("changes must be plain JSON text") from None
        if size > MAX_CHANGES_BYTES:
            raise ValueError(f"changes are larger than {MAX_CHANGES_BYTES} bytes")
        return value


class ArchivedFeedback(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    at: str
    tried: Annotated[str, StringConstraints(max_length=MAX_FEEDBACK_CHARS)] | None = None
    result: Annotated[str, StringConstraints(max_length=MAX_FEEDBACK_CHARS)] | None = None
    client: ShortText | None = None

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        return _moment(value, "at") or value


class ArchivedFields(BaseModel):
    """The fields only an archive carries: identity, life cycle, counters, history."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    kind: MemoryKind = "plaintext"
    status: MemoryStatus = "active"
    client: ShortText | None = None
    created_at: str | None = None
    updated_at: str | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    last_access: str | None = None
    version: Annotated[int, Field(ge=1, le=MAX_VERSION)] = 1
    access_count: Annotated[int, Field(ge=0, le=2**53)] = 0
    supersedes: str | None = None
    superseded_by: str | None = None
    versions: Annotated[list[ArchivedVersion], Field(max_length=MAX_VERSIONS)] = []
    feedback: Annotated[list[ArchivedFeedback], Field(max_length=MAX_FEEDBACK)] = []

    @field_validator("id", "supersedes", "superseded_by")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return _memory_id(value)

    @field_validator("created_at", "updated_at", "valid_from", "valid_to", "last_access")
    @classmethod
    def _moments(cls, value: Any, info: Any) -> Any:
        return _moment(value, info.field_name)


class CheckedRecord(BaseModel):
    """A record ready to become a ``memories`` row (``row``), with its history and log."""

    row: dict[str, Any]
    versions: list[ArchivedVersion]
    feedback: list[ArchivedFeedback]


def check_record(record: dict[str, Any], where: str) -> CheckedRecord:
    """Validate one archive record; raises ``InvalidInput`` naming ``where`` (e.g. "memories.jsonl line 3") and the field."""
    unknown = sorted(set(record) - set(CONTENT_FIELDS) - set(ArchivedFields.model_fields) - set(IGNORED_FIELDS))
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(repr(u[:40]) for u in unknown[:8])}")
    content = {k: record[k] for k in CONTENT_FIELDS if record.get(k) is not None}
    archived = {k: record[k] for k in ArchivedFields.model_fields if record.get(k) is not None}
    try:
        item = MemoryInput.model_validate(content)
        fields = ArchivedFields.model_validate(archived)
    except ValidationError as exc:
        raise InvalidInput(f"{where} cannot be stored: {_describe(exc)}") from None
    now = now_stored()
    row: dict[str, Any] = {
        "id": fields.id,
        "text": item.text,
        "kind": fields.kind,
        "type": item.type,
        "status": fields.status,
        "tags": item.tags,
        "entities": item.entities,
        "relations": [r.model_dump(mode="json") for r in item.relations],
        "source": item.source,
        "client": fields.client,
        "user_id": item.user_id,
        "agent_id": item.agent_id,
        "session_id": item.session_id,
        "created_at": fields.created_at or now,
        "updated_at": fields.updated_at or now,
        "occurred_at": stored_from_input(item.occurred_at, field="occurred_at"),
        "valid_from": fields.valid_from,
        "valid_to": fields.valid_to,
        "version": fields.version,
        "importance": item.importance,
        "confidence": item.confidence,
        "access_count": fields.access_count,
        "last_access": fields.last_access,
        "metadata": item.metadata,
        "role": item.role,
        "subject": normalize(item.subject) if item.subject else None,
        "state": item.state,
        "due_at": stored_from_input(item.due_at, field="due_at"),
        "parent_id": _checked_parent(item.parent_id, where),
        "supersedes": fields.supersedes,
        "superseded_by": fields.superseded_by,
    }
    # The row as every reader will see it: if the read model refuses it, so does import.
    try:
        Memory.model_validate(
            {
                **row,
                "cube": "import",
                "content_hash": "",
                "embedding_model": None,
                "relations": [RelationOut(**r) for r in row["relations"]],
            }
        )
    except ValidationError as exc:
        raise InvalidInput(f"{where} cannot be read back once stored: {_describe(exc)}") from None
    return CheckedRecord(row=row, versions=fields.versions, feedback=fields.feedback)


def _checked_parent(value: str | None, where: str) -> str | None:
    if value is not None and not is_memory_id(value):
        raise InvalidInput(f"{where} cannot be stored: parent_id: must be a memory id (mem_...)")
    return value


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
