"""Issue 30, the last mile: wrong argument types told in plain words; VS Code's mcp.json with comments.

A client that sends ``limit: "ten"`` read pydantic's own text ("1 validation error for
memory_searchArguments ... https://errors.pydantic.dev/..."); it now reads one sentence
naming the argument, what it takes and what came, for every tool, over every transport
and in the CLI. ``memcube install vscode`` refused an ``mcp.json`` with comments; it now
reads JSON with comments and writes only MemCube's entry, keeping the person's text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from support import CLIENT_INFO, add, error

from server.install import apply, config_path, plan_install, plan_uninstall

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
MEMCUBE = Path(sys.executable).with_name("memcube")
PYDANTIC_WORDS = ("pydantic", "http", "validation error", "Arguments", "[type=", "input_value", "Input should")

WRONG_TYPES = {
    "limit as a word": ("memory_search", {"query": "x", "limit": "ten"}, 'limit must be a whole number, not the string "ten"'),
    "memories as a string": (
        "memory_add",
        {"memories": "x"},
        'memories must be a list of objects, not the string "x"',
    ),
    "ids as a number": ("memory_get", {"ids": 5}, "ids must be a string or a list of strings, not the number 5"),
    "importance as a word": (
        "memory_add",
        {"text": "t", "importance": "abc"},
        'importance must be a number, not the string "abc"',
    ),
    "importance out of range": ("memory_add", {"text": "t", "importance": 5}, "importance must be at most 1, not the number 5"),
    "tags of numbers": ("memory_add", {"text": "t", "tags": [1, 2]}, "tags must be a list of strings, not the list [1, 2]"),
    "a batch item's text": ("memory_add", {"memories": [{"text": 5}]}, "memories[0].text must be a string, not the number 5"),
    "purge as a word": ("memory_delete", {"ids": "x", "purge": "yes"}, 'purge must be true or false, not the string "yes"'),
    "depth out of range": ("memory_graph", {"entity": "x", "depth": 3}, "depth must be one of 1 or 2, not the number 3"),
    "query left out": ("memory_search", {}, "query is required (a string)"),
}


def _plain(message: str) -> None:
    for word in PYDANTIC_WORDS:
        assert word not in message, message
    assert "\n" not in message and len(message) < 300, message


@pytest.mark.parametrize("case", list(WRONG_TYPES))
async def test_a_wrong_argument_type_is_told_in_one_plain_sentence_and_changes_nothing(client, home, case):
    tool, arguments, expected = WRONG_TYPES[case]
    kept = await add(client, "The spare key hangs behind the door", tags=["home"])
    message = await error(client, tool, **arguments)
    assert message == f"{tool}: {expected}"
    _plain(message)
    cube = home.cube()
    assert cube.count() == 1
    [memory] = cube.get([kept])
    assert memory.text == "The spare key hangs behind the door" and memory.tags == ["home"]


def _takes_an_object(schema: dict[str, Any]) -> bool:
    branches = schema.get("anyOf", [schema])
    return any(b.get("type") in ("object", None) or "$ref" in b for b in branches)


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2025 handshake in the quick tier too
async def test_every_tool_answers_every_wrong_argument_in_plain_words(client):
    """The fix sits where the SDK checks arguments, so no tool and no argument is left with pydantic's text."""
    checked = 0
    for tool in (await client.list_tools()).tools:
        for name, schema in tool.input_schema.get("properties", {}).items():
            if _takes_an_object(schema):
                continue
            result = await client.call_tool(tool.name, {name: {"not": "this"}})
            text = result.content[0].text
            assert result.is_error, (tool.name, name)
            if name == "cube":  # checked before the tool runs, by access control, with its own sentence
                assert text.startswith("cube name ") and "is not allowed: use 1-64 letters" in text, text
                continue
            assert text.startswith(f"{tool.name}: ") and name in text, text
            assert 'not the object {"not": "this"}' in text, text
            for word in PYDANTIC_WORDS:
                assert word not in text, text
            checked += 1
    assert checked > 40


def _serve(home: Path) -> StdioServerParameters:
    command, args = (str(MEMCUBE), ["serve"]) if MEMCUBE.is_file() else (sys.executable, ["-m", "server", "serve"])
    return StdioServerParameters(command=command, args=args, env={"MEMCUBE_HOME": str(home), "PYTHONPATH": str(ROOT)}, cwd=ROOT)


async def test_memcube_serve_over_stdio_tells_a_wrong_type_in_plain_words(tmp_path):
    with anyio.fail_after(120):
        async with Client(_serve(tmp_path), mode="legacy", client_info=CLIENT_INFO) as client:
            message = await error(client, "memory_search", query="keys", limit="ten")
            assert message == 'memory_search: limit must be a whole number, not the string "ten"'
            message = await error(client, "memory_get", ids=5)
            assert message == "memory_get: ids must be a string or a list of strings, not the number 5"


def test_the_cli_tells_a_refused_value_in_the_same_plain_words(tmp_path):
    command = [str(MEMCUBE)] if MEMCUBE.is_file() else [sys.executable, "-m", "server"]
    done = subprocess.run(
        [*command, "--home", str(tmp_path), "add", "The spare key hangs behind the door", "--importance", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "memcube: importance must be at most 1, not the number 5", done.stderr
    assert "Traceback" not in done.stderr


# --- memcube install vscode: mcp.json is JSON with comments ----------------------------------------

COMMAND = ["/opt/memcube/bin/memcube", "serve"]
ENTRY = {"type": "stdio", "command": COMMAND[0], "args": ["serve"]}

COMMENTED = """// My MCP servers { "not": "a server" }
{
\t/* a block comment with "quotes", // slashes and } braces */
\t"servers": {
\t\t"github": {
\t\t\t"type": "http",
\t\t\t"url": "https://api.githubcopilot.com/mcp/", // a string holding // is not a comment
\t\t}, // the trailing commas are VS Code's own style
\t},
\t"inputs": [],
}
"""


def loads(text: str) -> Any:
    from server.jsonc import loads as read_jsonc  # new in issue 30: imported here so the other tests run without it

    return read_jsonc(text)


def _vscode(tmp_path: Path, text: str | None) -> Path:
    path = config_path("vscode", user_home=tmp_path, platform="linux")
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is not None:
        path.write_text(text, encoding="utf-8")
    return path


def _install(tmp_path: Path, **options: Any) -> None:
    apply(plan_install("vscode", user_home=tmp_path, platform="linux", command=COMMAND, **options))


def test_install_vscode_keeps_the_persons_comments_and_only_adds_its_entry(tmp_path):
    path = _vscode(tmp_path, COMMENTED)
    _install(tmp_path)
    written = path.read_text(encoding="utf-8")
    # Every line the person wrote is still there, in order, and only MemCube's entry was added.
    lines = written.splitlines()
    assert [line for line in lines if line in COMMENTED.splitlines()] == COMMENTED.splitlines()
    assert loads(written) == {
        "servers": {"github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"}, "memcube": ENTRY},
        "inputs": [],
    }
    assert '\t\t"memcube": {\n\t\t\t"type": "stdio",' in written  # the file's own indentation (tabs)
    backups = [p for p in path.parent.iterdir() if ".bak-" in p.name]
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == COMMENTED

    # Installing again changes nothing; a new home replaces only the entry, still keeping the comments.
    assert not plan_install("vscode", user_home=tmp_path, platform="linux", command=COMMAND).changed
    _install(tmp_path, memcube_home="/data/memories")
    refreshed = path.read_text(encoding="utf-8")
    assert loads(refreshed)["servers"]["memcube"] == {**ENTRY, "env": {"MEMCUBE_HOME": "/data/memories"}}
    assert refreshed.count('"memcube"') == 1 and "// the trailing commas are VS Code's own style" in refreshed

    # Uninstalling gives the person's file back exactly.
    apply(plan_uninstall("vscode", user_home=tmp_path, platform="linux"))
    assert path.read_text(encoding="utf-8") == COMMENTED


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        ("", {"servers": {"memcube": ENTRY}}),
        ("  \n", {"servers": {"memcube": ENTRY}}),
        ('{\n    // nothing yet\n    "inputs": []\n}\n', {"inputs": [], "servers": {"memcube": ENTRY}}),
        ('{\n  "servers": { /* none yet */ }\n}\n', {"servers": {"memcube": ENTRY}}),
        ('{"servers": {"a": {"command": "x"}}}', {"servers": {"a": {"command": "x"}, "memcube": ENTRY}}),
        (
            '{"servers": {"memcube": {"command": "old"} /* ours, stale */, "b": {"command": "y"},},}',
            {"servers": {"memcube": ENTRY, "b": {"command": "y"}}},
        ),
    ],
)
def test_install_vscode_fits_every_shape_of_mcp_json(tmp_path, before, expected):
    path = _vscode(tmp_path, before)
    _install(tmp_path)
    written = path.read_text(encoding="utf-8")
    assert loads(written) == expected
    for comment in ("// nothing yet", "/* none yet */", "/* ours, stale */"):
        if comment in before and "stale" not in comment:
            assert comment in written
    assert not plan_install("vscode", user_home=tmp_path, platform="linux", command=COMMAND).changed
    apply(plan_uninstall("vscode", user_home=tmp_path, platform="linux"))
    assert "memcube" not in loads(path.read_text(encoding="utf-8")).get("servers", {})


@pytest.mark.parametrize(
    "text", ['{"servers": {} /* never closed', '{"servers": {"a": 1}', '{"a": "unterminated}', "{} {}", '{"a" 1}']
)
def test_a_broken_mcp_json_is_still_refused_and_left_untouched(tmp_path, text):
    from server.install import InstallError
    from server.jsonc import JsoncError

    path = _vscode(tmp_path, text)
    with pytest.raises(InstallError, match="nothing was changed"):
        plan_install("vscode", user_home=tmp_path, platform="linux", command=COMMAND)
    with pytest.raises(JsoncError):
        loads(text)
    assert path.read_text(encoding="utf-8") == text


def test_jsonc_reads_what_json_reads():
    text = json.dumps({"a": [1, 2.5, -3e2, True, False, None], "b": {"c": "\u00e9\\n//x"}, "": {}}, indent=2)
    assert loads(text) == json.loads(text)
