"""Every third-party module the code imports comes from a distribution that pyproject.toml declares.

A package that only arrives through another one (starlette through mcp, jinja2 through
mlx-lm) can leave with that package's next release; declaring it keeps the install honest.
The code in memory/ server/ tools/ needs [project] dependencies (or, in the one package an
optional extra serves, that extra's); bench/ and tests/ may also use the dev group.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("memory", "server", "tools")
DEV_DIRS = ("bench", "tests")
# Directories whose modules the scripts and tests import by bare name (sys.path entries).
LOCAL_DIRS = (ROOT, ROOT / "bench", ROOT / "tests")
# Each optional extra and the package that needs it: only there may the code import its distributions.
EXTRA_PACKAGES = {"postgres": "memory/store/postgres/"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        assert match, f"unreadable requirement {requirement!r}"
        names.add(_normalise(match.group(1)))
    return names


@cache
def _declared() -> tuple[set[str], set[str]]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = _requirement_names(pyproject["project"]["dependencies"])
    dev = _requirement_names(pyproject.get("dependency-groups", {}).get("dev", []))
    return runtime, runtime | dev


@cache
def _extras() -> dict[str, set[str]]:
    """The package folder an optional extra serves -> the distributions that extra declares."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("optional-dependencies", {})
    assert set(extras) == set(EXTRA_PACKAGES), "name the package each optional extra serves in EXTRA_PACKAGES"
    return {EXTRA_PACKAGES[name]: _requirement_names(requirements) for name, requirements in extras.items()}


def _declared_for(file: str, declared: set[str]) -> set[str]:
    """What a file may import: the declared distributions, and an extra's if the file is in its package."""
    return declared.union(*(names for folder, names in _extras().items() if file.startswith(folder)))


def _is_local(top: str) -> bool:
    return any((folder / f"{top}.py").exists() or (folder / top / "__init__.py").exists() for folder in LOCAL_DIRS)


def _third_party_imports(folder: str) -> dict[str, set[str]]:
    """Top-level module name -> the files (relative) that import it, for absolute imports only."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or _is_local(top):
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _undeclared(folders: tuple[str, ...], declared: set[str]) -> list[str]:
    return [problem for folder in folders for problem in _undeclared_imports(_third_party_imports(folder), declared)]


def _undeclared_imports(imports: dict[str, set[str]], declared: set[str]) -> list[str]:
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for top, files in sorted(imports.items()):
        providers = {_normalise(name) for name in distributions.get(top, [])}
        undeclared_in = sorted(file for file in files if not providers & _declared_for(file, declared))
        where = ", ".join(undeclared_in[:3])
        if not providers:
            problems.append(f"{top}: no installed distribution provides it (imported in {', '.join(sorted(files)[:3])})")
        elif undeclared_in:
            problems.append(f"{top}: from {' or '.join(sorted(providers))}, not declared (imported in {where})")
    return problems


def test_package_imports_are_project_dependencies() -> None:
    runtime, _ = _declared()
    problems = _undeclared(PACKAGE_DIRS, runtime)
    assert not problems, "declare in [project] dependencies:\n" + "\n".join(problems)


@pytest.mark.parametrize("folder", DEV_DIRS)
def test_bench_and_test_imports_are_declared(folder: str) -> None:
    _, with_dev = _declared()
    problems = _undeclared((folder,), with_dev)
    assert not problems, "declare in [project] dependencies or the dev group:\n" + "\n".join(problems)


def test_the_check_sees_an_undeclared_import() -> None:
    """The scan itself works: a module that only arrives through mcp is reported when undeclared."""
    assert "starlette" in _third_party_imports("server")
    assert _undeclared(("server",), _declared()[0] - {"starlette"}) != []


def test_an_extra_is_declared_only_for_its_package() -> None:
    """psycopg (the postgres extra) may be imported by memory/store/postgres/ alone."""
    runtime, _ = _declared()
    assert _undeclared_imports({"psycopg": {"memory/store/postgres/schema.py"}}, runtime) == []
    assert _undeclared_imports({"psycopg": {"memory/cube.py"}}, runtime) != []
