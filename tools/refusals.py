"""A refused value said as one plain sentence: which argument, what it takes, what came (issue 30).

pydantic's own text ("1 validation error for memory_searchArguments ... For further
information visit https://errors.pydantic.dev/...") is written for the programmer who
wrote the model. A client (or a person at the CLI) reads instead::

    limit must be a whole number, not the string "ten"

One function serves the MCP tools (the SDK's argument check and the memory layer's
models, through ``ToolRuntime.call``) and the CLI, so every path says the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

_SHOWN = 40  # characters of a refused value echoed back

# pydantic error type -> what the value had to be
_KINDS = {
    "string_type": "a string",
    "string_unicode": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "datetime_type": "a date and time (ISO 8601)",
    "datetime_parsing": "a date and time (ISO 8601)",
    "datetime_from_date_parsing": "a date and time (ISO 8601)",
    "date_type": "a date (ISO 8601)",
    "date_parsing": "a date (ISO 8601)",
    "none_required": "null",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least {}"),
    "greater_than": ("gt", "more than {}"),
    "less_than_equal": ("le", "at most {}"),
    "less_than": ("lt", "less than {}"),
    "string_too_short": ("min_length", "at least {} characters long"),
    "string_too_long": ("max_length", "at most {} characters long"),
    "too_short": ("min_length", "at least {} items long"),
    "too_long": ("max_length", "at most {} items long"),
    "multiple_of": ("multiple_of", "a multiple of {}"),
}
_PLURAL = {
    "a string": "strings",
    "a whole number": "whole numbers",
    "a number": "numbers",
    "true or false": "true or false values",
    "an object": "objects",
    "a list": "lists",
}


def describe_refusal(exc: ValidationError, values: Any = None, schema: Mapping[str, Any] | None = None, *, limit: int = 4) -> str:
    """``exc`` as sentences, one per refused argument, joined by ``; ``.

    ``values`` is what was validated (the call's arguments), to tell a union's member
    names in an error's location from real keys; ``schema`` is the JSON schema the
    client was shown (a tool's ``inputSchema``), to say what a union argument takes.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for error in exc.errors(include_url=False):
        top = str(error["loc"][0]) if error["loc"] else ""
        groups.setdefault(top, []).append(dict(error))
    sentences = [_argument(top, errors, values, schema) for top, errors in groups.items()]
    more = len(sentences) - limit
    return "; ".join(sentences[:limit]) + (f"; and {more} more" if more > 0 else "")


def _argument(top: str, errors: list[dict[str, Any]], values: Any, schema: Mapping[str, Any] | None) -> str:
    walked = [_walk(error["loc"], values) for error in errors]
    first, (path, _) = errors[0], walked[0]
    said = _from_schema(_property(schema, top), schema or {})  # what the whole argument takes, as the client was told
    if first["type"] == "missing":
        return f"{_path(path)} is required" + (f" ({said})" if said and len(path) == 1 else "")
    if first["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{_path(path)} is not an argument it takes"
    union = any(crossed for _, crossed in walked)
    items = len({tuple(p) for p, _ in walked}) > 1 and all(len(p) == 2 for p, _ in walked)
    if _is_whole(top, values) and (union or items):
        # Several branches (str | list[str]) or several items of a list: say what the argument takes as a whole.
        expected = said
        if expected is None and union:
            kinds = [_KINDS.get(e["type"]) for e in errors if len(e["loc"]) == 2]
            expected = " or ".join(dict.fromkeys(k for k in kinds if k)) or None
        if expected is not None:
            return f"{top} must be {expected}, not {_shown(values[top])}"
    if said and first["type"] in _KINDS and len(errors) == 1 and len(path) == 1:
        return f"{_path(path)} must be {said}, not {_shown(first.get('input'))}"
    return _one(first, path)


def _one(error: dict[str, Any], path: list[str | int]) -> str:
    kind, ctx, where = error["type"], error.get("ctx") or {}, _path(path)
    got = _shown(error.get("input"))
    if kind in _KINDS:
        return f"{where} must be {_KINDS[kind]}, not {got}"
    if kind in ("literal_error", "enum") and "expected" in ctx:
        return f"{where} must be one of {ctx['expected']}, not {got}"
    if kind in _BOUNDS and _BOUNDS[kind][0] in ctx:
        key, phrase = _BOUNDS[kind]
        bound = ctx[key]
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"{where} must be {phrase.format(bound)}, not {got}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return f"{where}: {ctx['error']} (it was {got})"
    message = str(error["msg"]).rstrip(".")
    return f"{where}: {message[:1].lower()}{message[1:]} (it was {got})"


def _walk(loc: Sequence[str | int], values: Any) -> tuple[list[str | int], bool]:
    """The location's real keys and indexes into ``values``; True where it also names a union member."""
    path: list[str | int] = []
    current, union = values, False
    for position, part in enumerate(loc):
        inside_object = isinstance(current, Mapping) and part in current
        inside_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if inside_object or inside_list:
            current = current[part]
        elif values is None or (position == len(loc) - 1 and isinstance(current, Mapping)):
            current = None  # a missing or unknown key, or nothing to walk: keep the name
        else:
            union = True  # "str", "list[str]", "function-after[...]": a member of a union, not a key
            continue
        path.append(part)
    return path, union


def _is_whole(top: str, values: Any) -> bool:
    return bool(top) and isinstance(values, Mapping) and top in values


def _path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the input"


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        text = repr(value)
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 3] + "..."
    if isinstance(value, str):
        return f"the string {text}"
    if isinstance(value, int | float):
        return f"the number {text}"
    if isinstance(value, list | tuple):
        return f"the list {text}"
    if isinstance(value, Mapping):
        return f"the object {text}"
    return text


def _property(schema: Mapping[str, Any] | None, name: str) -> Mapping[str, Any] | None:
    found = (schema or {}).get("properties", {}).get(name)
    return found if isinstance(found, Mapping) else None


def _from_schema(node: Mapping[str, Any] | None, root: Mapping[str, Any], plural: bool = False) -> str | None:
    """What a JSON schema node takes, in words ("a string or a list of strings")."""
    if node is None:
        return None
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _from_schema(root.get("$defs", {}).get(ref.removeprefix("#/$defs/")), root, plural)
    if "enum" in node:
        return "one of " + ", ".join(json.dumps(v) for v in node["enum"])
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list):
        said = [_from_schema(b, root, plural) for b in branches if b.get("type") != "null"]
        return " or ".join(dict.fromkeys(s for s in said if s)) or None
    kind = {
        "string": "a string",
        "integer": "a whole number",
        "number": "a number",
        "boolean": "true or false",
        "object": "an object",
    }.get(str(node.get("type")))
    if node.get("type") == "array":
        items = _from_schema(node.get("items"), root, plural=True)
        kind = f"a list of {items}" if items else "a list"
        return f"lists of {items}" if plural and items else ("lists" if plural else kind)
    if kind is None:
        return None
    return _PLURAL.get(kind, kind) if plural else kind
