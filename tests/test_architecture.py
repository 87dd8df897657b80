"""The layers' rules, read from the source (in the spirit of basic-memory's import tests).

- ``memory/`` never imports ``mcp``, ``server`` or ``tools``; ``tools/`` never imports ``server``.
- Inside ``memory/`` a lower layer never imports a higher one:
  base vocabulary < store < (graph | retrieval, which ignore each other) < activation
  < the cube API (cube, home, profile, doctor) < io.
- Only ``memory/store/`` runs SQL on a cube's tables, and nobody else touches the
  store's connection or lock.

Imports under ``if TYPE_CHECKING:`` are for annotations only and do not count as
dependencies (except of ``mcp``, which the core never names at all).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "models",
    "errors",
    "ids",
    "timeutil",
    "entities",
    "language",
    "stopwords",
    "relations",
    "config",
    "defaults",
    "access_rules",
    "fork_join",
    "supersession",
    "supersession_links",
    "suggest",
}
API = {"cube", "home", "profile", "doctor", "doctor_checks", "supersession_repair"}
RANK = {"base": 0, "store": 1, "graph": 2, "retrieval": 2, "activation": 3, "api": 4, "io": 5}
PEERS_APART = {frozenset({"graph", "retrieval"})}

TABLES = (
    "memories",
    "memory_versions",
    "memory_entities",
    "memory_fts",
    "memory_context_fts",
    "memory_vec",
    "graph_outbox",
    "cube_meta",
    "memory_feedback",
    "access_denials",
)
SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA)\b[\s\S]*\b(" + "|".join(TABLES) + r")\b"
    r"|\bPRAGMA\s+\w+",
)
STORE_PRIVATES = {"_conn", "_lock", "_read", "_tables", "_writer"}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.rule}"


def layer_of(module: str) -> str | None:
    """The layer of a ``memory`` module, or None outside ``memory``."""
    parts = module.split(".")
    if parts[0] != "memory" or len(parts) == 1:
        return None
    if parts[1] in ("store", "graph", "retrieval", "activation", "io"):
        return parts[1]
    if parts[1] in BASE or parts[1] == "assets":
        return "base"
    if parts[1] in API:
        return "api"
    return "unplaced"


def _imports(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(module imported, line, only for type checking) for every import in a module."""
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    type_only.add(id(sub))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in type_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno, id(node) in type_only))
            # "from memory import cube" names a module too
            found += [(f"{node.module}.{a.name}", node.lineno, id(node) in type_only) for a in node.names]
    return found


def check_source(module: str, source: str) -> list[Violation]:
    """Every rule this module's source breaks."""
    tree = ast.parse(source)
    top = module.split(".")[0]
    here = layer_of(module)
    out: list[Violation] = []
    for imported, line, type_only in _imports(tree):
        head = imported.split(".")[0]
        if top == "memory" and head == "mcp":
            out.append(Violation(module, line, f"the core imports mcp ({imported})"))
        if top == "memory" and head in ("server", "tools") and not type_only:
            out.append(Violation(module, line, f"the core imports the interface ({imported})"))
        if top == "tools" and head == "server" and not type_only:
            out.append(Violation(module, line, f"a tool adapter imports the server ({imported})"))
        there = layer_of(imported)
        if here in RANK and there in RANK and not type_only and module != "memory":
            if RANK[there] > RANK[here]:
                out.append(Violation(module, line, f"layer {here} imports the higher layer {there} ({imported})"))
            if frozenset({here, there}) in PEERS_APART:
                out.append(Violation(module, line, f"layer {here} imports its peer {there} ({imported})"))
    if here == "unplaced":
        out.append(Violation(module, 1, "a memory module outside every layer: place it in the test's map"))
    in_store = module.startswith("memory.store")
    if not in_store:
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                out.append(Violation(module, node.lineno, f"SQL outside the store: {node.value[:60]!r}"))
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
                if SQL.search(text):
                    out.append(Violation(module, node.lineno, f"SQL outside the store: {text[:60]!r}"))
            if (
                isinstance(node, ast.Attribute)
                and node.attr in STORE_PRIVATES
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                out.append(Violation(module, node.lineno, f"reaches into the store's privates (.{node.attr})"))
    return sorted(set(out), key=lambda v: v.line)


def project_modules() -> dict[str, Path]:
    modules = {}
    for folder in ("memory", "server", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


def test_the_project_keeps_its_layers():
    violations = [v for name, path in sorted(project_modules().items()) for v in check_source(name, path.read_text())]
    assert not violations, "\n".join(map(str, violations))


def test_every_memory_module_belongs_to_a_layer():
    unplaced = [name for name in project_modules() if name.startswith("memory.") and layer_of(name) == "unplaced"]
    assert not unplaced


# The checker itself: each rule, broken on purpose, is caught.


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("memory.models", "import mcp\n", "the core imports mcp"),
        ("memory.cube", "from mcp.types import Tool\n", "the core imports mcp"),
        ("memory.cube", "from server.app import build_server\n", "the core imports the interface"),
        ("tools.memory_tools", "from server.access import AccessControl\n", "a tool adapter imports the server"),
        ("memory.store.cube_store", "from memory.cube import MemCube\n", "layer store imports the higher layer api"),
        (
            "memory.retrieval.search",
            "from memory.graph.graph_store import GraphStore\n",
            "layer retrieval imports its peer graph",
        ),
        ("memory.profile", 'Q = "SELECT id FROM memories WHERE status = ?"\n', "SQL outside the store"),
        ("memory.retrieval.search", 'def f(t):\n    return f"UPDATE memories SET x = {t}"\n', "SQL outside the store"),
        ("memory.cube", "def f(cube):\n    return cube.store._conn\n", "reaches into the store's privates"),
        ("memory.newthing", "x = 1\n", "a memory module outside every layer"),
    ],
)
def test_the_checker_catches_a_broken_rule(module, source, rule):
    assert any(v.rule.startswith(rule) for v in check_source(module, source)), check_source(module, source)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("memory.store.cube_store", 'Q = "SELECT id FROM memories"\n'),
        (
            "memory.activation.scheduler",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from memory.home import MemoryHome\n",
        ),
        ("memory.graph.graph_store", 'Q = "MATCH (m:Memory {id: $id}) DETACH DELETE m"\n'),
        ("memory.cube", 'TEXT = "select the memories you want"\n'),
    ],
)
def test_the_checker_allows_what_the_rules_allow(module, source):
    assert check_source(module, source) == []
