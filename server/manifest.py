"""Keep ``manifest.json`` (the MCP Bundle manifest) in step with what the server serves.

Claude Desktop shows a bundle's ``tools`` and ``prompts`` from its manifest before the
server has ever started, so they must be exactly what ``tools/list`` and ``prompts/list``
answer. This module derives both lists (and the version) from a live server built by
``server.app.build_server``; ``tests/test_bundle.py`` compares them with the file, so a
new tool or prompt fails the tests until the manifest is refreshed:

    uv run python -m server.manifest --write    # rewrite manifest.json
    uv run python -m server.manifest --check    # exit 1 when manifest.json is stale
    uv run python -m server.manifest            # print the manifest it would write
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from .recording import publish, scratch_server

MANIFEST_PATH = Path(__file__).resolve().parents[1] / "manifest.json"
MAX_DESCRIPTION = 300
MIN_SUMMARY = 40

# A bundle prompt needs a text: what the client sends when the user picks it. Known prompts
# get a hand-written one; a prompt added later gets one made from its description.
PROMPT_TEXTS = {
    "recall": "Load what MemCube remembers about ${arguments.topic} into the conversation, with memory ids.",
    "remember": "Review this conversation and save what will matter later with memory_add. ${arguments.focus}",
    "start": "Load what MemCube knows about me (goals, open tasks, preferences) before we start.",
}


def summary(description: str | None) -> str:
    """The first sentence of a description (two when the first is very short), on one line."""
    text = " ".join((description or "").split())
    ends = [m.start() for m in re.finditer(r"(?<=[.!?])\s", text)]
    first = text[: ends[0]] if ends else text
    if len(first) < MIN_SUMMARY and len(ends) > 1:
        first = text[: ends[1]]
    if len(first) > MAX_DESCRIPTION:
        first = first[: MAX_DESCRIPTION - 1].rstrip() + "…"
    return first


def live_listing() -> dict[str, Any]:
    """What a freshly built server serves: its version, tools and prompts (manifest shape)."""
    import anyio

    with scratch_server() as mcp:
        tools = anyio.run(mcp.list_tools)
        prompts = anyio.run(mcp.list_prompts)
        version = mcp.version
    return {
        "version": version,
        "tools": [{"name": t.name, "description": summary(t.description)} for t in tools],
        "prompts": [
            {
                "name": p.name,
                "description": summary(p.description),
                "arguments": [a.name for a in p.arguments or []],
                "text": PROMPT_TEXTS.get(p.name) or _generic_prompt_text(p.name, [a.name for a in p.arguments or []]),
            }
            for p in prompts
        ],
    }


def _generic_prompt_text(name: str, arguments: list[str]) -> str:
    given = " ".join(f"{a}: ${{arguments.{a}}}" for a in arguments)
    return f"Use MemCube's {name} prompt. {given}".strip()


def render(manifest: dict[str, Any], listing: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its version, tools and prompts replaced by the live ones (key order kept)."""
    updated = dict(manifest)
    if listing["version"] and not listing["version"].startswith("0+"):
        updated["version"] = listing["version"]
    updated["tools"] = listing["tools"]
    updated["prompts"] = listing["prompts"]
    return updated


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    current = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    return publish(dumps(render(current, live_listing())), MANIFEST_PATH, args, module="server.manifest")


if __name__ == "__main__":
    sys.exit(main())
