"""JSON with comments (VS Code's ``mcp.json``): read it, and change one member keeping the rest of the text.

VS Code reads its settings as JSONC: ``//`` and ``/* */`` comments and trailing commas
are allowed. ``memcube install vscode`` must neither refuse such a file nor rewrite it as
plain JSON (the person's comments and layout would be lost), so this module parses the
text into values *with their spans* and edits only the span of the member it changes.
Everything outside that span (comments, order, indentation, trailing commas) is kept
byte for byte.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_MAX_DEPTH = 256
_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n\ufeff]+)
  | (?P<line>//[^\n]*)
  | (?P<block>/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<word>true|false|null)
  | (?P<punct>[{}\[\]:,])
    """,
    re.VERBOSE | re.DOTALL,
)
# What may follow a value on its own line: spaces and comments that end on that line.
_SAME_LINE = re.compile(r"(?:[ \t\r]+|//[^\n]*|/\*(?:(?!\*/)[^\n])*\*/)*")
_WORDS = {"true": True, "false": False, "null": None}


class JsoncError(ValueError):
    """The text is not JSON with comments; the message says where."""


@dataclass
class Member:
    key: str
    key_start: int
    value: Node
    comma: int | None = None  # where the comma after the value is, if there is one


@dataclass
class Node:
    start: int
    end: int  # one past the value's last character
    value: Any
    members: list[Member] = field(default_factory=list)  # an object's members, in order

    def member(self, key: str) -> Member | None:
        found = [m for m in self.members if m.key == key]
        return found[-1] if found else None  # as JSON readers do: the last one wins


def loads(text: str) -> Any:
    """The value the text holds, comments and trailing commas allowed."""
    return parse(text).value


def parse(text: str) -> Node:
    tokens = _tokens(text)
    node, at = _Parser(text, tokens).value(0, 0)
    if at != len(tokens):
        raise _error(text, tokens[at][1], "more after the end of the value")
    return node


def with_member(text: str, key: str, name: str, value: Any) -> str:
    """``text`` whose top object's ``key`` object has ``name`` set to ``value``; the rest as it was."""
    root = _root(text)
    holder = root.member(key)
    if holder is None:
        return _insert(text, root, key, {name: value})
    if not isinstance(holder.value.value, dict):
        raise JsoncError(f"{key!r} is not an object")
    current = holder.value.member(name)
    if current is None:
        return _insert(text, holder.value, name, value)
    if current.value.value == value:
        return text
    rendered = _render(value, _indent_at(text, current.key_start), _unit(text, root))
    return text[: current.value.start] + rendered + text[current.value.end :]


def without_member(text: str, key: str, name: str) -> str:
    """``text`` without ``name`` in its top object's ``key`` object (unchanged when it is not there)."""
    root = _root(text)
    holder = root.member(key)
    if holder is None or not isinstance(holder.value.value, dict):
        return text
    members = holder.value.members
    for index in reversed(range(len(members))):  # from the end, so earlier spans stay valid
        member = members[index]
        if member.key != name:
            continue
        if member.comma is not None:
            text = _cut(text, member.key_start, member.comma + 1)
        else:
            text = _cut(text, member.key_start, member.value.end)
            if index > 0 and members[index - 1].comma is not None:  # it was last: the comma before it goes
                comma = members[index - 1].comma
                assert comma is not None
                text = text[:comma] + text[comma + 1 :]
    return text


def _root(text: str) -> Node:
    root = parse(text)
    if not isinstance(root.value, dict):
        raise JsoncError(f"the file holds a JSON {type(root.value).__name__}, not an object")
    return root


def _insert(text: str, obj: Node, name: str, value: Any) -> str:
    unit = _unit(text, _root(text))
    if obj.members:
        indent = _indent_at(text, obj.members[0].key_start)
        last = max(obj.members, key=lambda m: m.key_start)
        if last.comma is not None:  # the person ends members with a comma: so will ours
            at, closing = last.comma + 1, ","
        else:
            text = text[: last.value.end] + "," + text[last.value.end :]
            at, closing = last.value.end + 1, ""
    else:
        indent = _indent_at(text, obj.start) + unit
        at = obj.start + 1
        closing = "" if "\n" in text[at : obj.end - 1] else "\n" + _indent_at(text, obj.start)
    # Past a comment on the same line, so that it stays with what it was written beside.
    rest = _SAME_LINE.match(text, at)
    if rest is not None and text.startswith("\n", rest.end()):
        at = rest.end()
    addition = f"\n{indent}{json.dumps(name, ensure_ascii=False)}: {_render(value, indent, unit)}{closing}"
    return text[:at] + addition + text[at:]


def _cut(text: str, start: int, end: int) -> str:
    """Remove ``text[start:end]``, and the line it stood on when nothing else is left there."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    if not text[line_start:start].strip() and not text[end:line_end].strip():
        return text[:line_start] + text[line_end + 1 :]
    return text[:start] + text[end:]


def _indent_at(text: str, position: int) -> str:
    line_start = text.rfind("\n", 0, position) + 1
    line = text[line_start:position]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _unit(text: str, root: Node) -> str:
    """One level of the file's indentation: what its first member is indented by, else two spaces."""
    if root.members:
        inner, outer = _indent_at(text, root.members[0].key_start), _indent_at(text, root.start)
        if len(inner) > len(outer) and inner.startswith(outer):
            return inner[len(outer) :]
    return "  "


def _render(value: Any, indent: str, unit: str) -> str:
    return json.dumps(value, indent=unit, ensure_ascii=False).replace("\n", "\n" + indent)


def _error(text: str, position: int, what: str) -> JsoncError:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return JsoncError(f"line {line}, column {column}: {what}")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of each token, without spaces and comments."""
    out: list[tuple[str, int, int]] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            what = "an unterminated comment" if text.startswith("/*", at) else "an unterminated string"
            if not text.startswith(("/*", '"'), at):
                what = f"unexpected {text[at]!r}"
            raise _error(text, at, what)
        kind = match.lastgroup or ""
        if kind not in ("space", "line", "block"):
            out.append((kind, at, match.end()))
        at = match.end()
    return out


class _Parser:
    def __init__(self, text: str, tokens: list[tuple[str, int, int]]) -> None:
        self.text, self.tokens = text, tokens

    def _at(self, index: int) -> tuple[str, int, int]:
        if index >= len(self.tokens):
            raise _error(self.text, len(self.text), "the text ends too early")
        return self.tokens[index]

    def _is(self, index: int, char: str) -> bool:
        kind, start, end = self._at(index)
        return kind == "punct" and self.text[start:end] == char

    def value(self, index: int, depth: int) -> tuple[Node, int]:
        if depth > _MAX_DEPTH:
            raise _error(self.text, self._at(index)[1], "nested too deep")
        kind, start, end = self._at(index)
        raw = self.text[start:end]
        if kind == "string":
            try:
                return Node(start, end, json.loads(raw)), index + 1
            except ValueError:
                raise _error(self.text, start, "a string with a bad escape") from None
        if kind == "number":
            return Node(start, end, json.loads(raw)), index + 1
        if kind == "word":
            return Node(start, end, _WORDS[raw]), index + 1
        if raw == "{":
            return self._object(index, depth)
        if raw == "[":
            return self._array(index, depth)
        raise _error(self.text, start, f"unexpected {raw!r}")

    def _object(self, index: int, depth: int) -> tuple[Node, int]:
        node = Node(self.tokens[index][1], 0, {})
        index += 1
        while not self._is(index, "}"):
            kind, key_start, _ = self._at(index)
            if kind != "string":
                raise _error(self.text, key_start, "expected a name in double quotes")
            key, _ = self.value(index, depth + 1)
            if not self._is(index + 1, ":"):
                raise _error(self.text, self._at(index + 1)[1], "expected ':'")
            value, index = self.value(index + 2, depth + 1)
            member = Member(key.value, key_start, value)
            node.members.append(member)
            node.value[member.key] = value.value
            if self._is(index, ","):
                member.comma = self._at(index)[1]
                index += 1
            elif not self._is(index, "}"):
                raise _error(self.text, self._at(index)[1], "expected ',' or '}'")
        node.end = self._at(index)[2]
        return node, index + 1

    def _array(self, index: int, depth: int) -> tuple[Node, int]:
        node = Node(self.tokens[index][1], 0, [])
        index += 1
        while not self._is(index, "]"):
            item, index = self.value(index, depth + 1)
            node.value.append(item.value)
            if self._is(index, ","):
                index += 1
            elif not self._is(index, "]"):
                raise _error(self.text, self._at(index)[1], "expected ',' or ']'")
        node.end = self._at(index)[2]
        return node, index + 1
