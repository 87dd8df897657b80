"""Property-based bad input: every tool and resource, hostile and random values.

For each generated call: an answer comes (no hang), no handler fails unexpectedly (the SDK
logs those), and a rejected call changes nothing that is stored. The case counts are
printed (run with -s to see them).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from memory import MemoryHome
from server.app import build_server

pytestmark = pytest.mark.slow  # property-based: hundreds of generated calls per test

HOSTILE = [
    "'); DROP TABLE memories; --",
    '" OR 1=1 --',
    "}) MATCH (n) DETACH DELETE n //",
    "MATCH (n) RETURN n",
    'NEAR(" AND OR *',
    "{{7*7}} ${jndi:ldap://x} {% raw %} %s %n",
    "nul\x00byte",
    "lone\ud800surrogate",
    "\udfff",
    "../../etc/passwd",
    "mem_00000000000000000000000000",
    "mem_" + "z" * 26,
    "",
    " ",
    "x" * 40_000,
    "🧠" * 1000,
    "default",
    "a" * 65,
]
BIG = "y" * 10_000_000

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.sampled_from(HOSTILE),
    st.text(max_size=60),
    st.just(BIG),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=8
)


class UnexpectedErrors(logging.Handler):
    """Collects the SDK's reports of handlers that raised something other than a tool/resource error."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def live(tmp_path, shared_embedder):
    """A server and a client on a portal's event loop, callable from synchronous hypothesis tests."""
    watcher = UnexpectedErrors()
    logging.getLogger("mcp").addHandler(watcher)
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    with start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(Client(build_server(home, warm_up=False), mode="legacy")) as client:
            yield portal, client, watcher, home
    logging.getLogger("mcp").removeHandler(watcher)
    home.close()


def _state(portal, client: Client, canary: str) -> tuple[Any, ...]:
    stats = portal.call(lambda: client.read_resource("memory://default/stats", cache_mode="bypass"))
    got = portal.call(lambda: client.call_tool("memory_get", {"ids": canary}))
    assert not got.is_error, got.content
    memory = got.structured_content["memories"][0]
    counts = json.loads(stats.contents[0].text)
    counts.pop("graph_pending", None)
    return (json.dumps(counts, sort_keys=True), memory["version"], memory["text"], memory["status"])


def _canary_alive(portal, client: Client, canary: str) -> bool:
    got = portal.call(lambda: client.call_tool("memory_get", {"ids": canary}))
    return not got.is_error and got.structured_content["memories"][0]["status"] != "deleted"


def test_every_tool_survives_hostile_and_random_arguments(live):
    portal, client, watcher, _ = live

    def new_canary(n: int) -> str:
        answer = portal.call(lambda: client.call_tool("memory_add", {"text": f"Canary {n}: Ada keeps bees in Lyon"}))
        return answer.structured_content["ids"][0]

    canaries = [new_canary(0)]
    tools = portal.call(client.list_tools).tools
    counts = {"cases": 0, "rejected": 0}

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(data=st.data())
    def one_call(data: st.DataObject) -> None:
        tool = data.draw(st.sampled_from(tools))
        names = list(tool.input_schema.get("properties", {}))
        chosen = data.draw(st.lists(st.sampled_from(names + ["unknown_field"]), unique=True, max_size=len(names) + 1))
        arguments = {name: data.draw(values) for name in chosen}
        if not _canary_alive(portal, client, canaries[-1]):
            canaries.append(new_canary(len(canaries)))  # an accepted delete of the canary is allowed
        canary = canaries[-1]
        if data.draw(st.booleans()) and "ids" in names:
            arguments["ids"] = canary if data.draw(st.booleans()) else [canary, "mem_" + "0" * 26]
        before = _state(portal, client, canary)
        result = portal.call(lambda: _call_with_deadline(client, tool.name, arguments))
        counts["cases"] += 1
        assert watcher.messages == [], f"{tool.name}({_short(arguments)}) raised: {watcher.messages}"
        if result.is_error:
            counts["rejected"] += 1
            message = result.content[0].text
            assert message and "Traceback" not in message
            assert _state(portal, client, canary) == before, f"rejected {tool.name}({_short(arguments)}) changed the cube"

    one_call()
    print(f"tool fuzz: {counts['cases']} cases, {counts['rejected']} rejected with an error, 0 unexpected failures")
    assert counts["cases"] >= 400


def test_every_resource_uri_survives_hostile_parts(live):
    portal, client, watcher, _ = live
    memory_id = portal.call(lambda: client.call_tool("memory_add", {"text": "Bob sails on Lake Geneva"})).structured_content[
        "ids"
    ][0]
    templates = [t.uri_template for t in portal.call(client.list_resource_templates).resource_templates]
    parts = st.one_of(st.sampled_from(HOSTILE[:-4] + ["default", memory_id, "Bob", "work"]), st.text(min_size=1, max_size=30))
    counts = {"cases": 0, "errors": 0}

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(template=st.sampled_from(templates + ["memory://cubes", "memory://{cube}", "file:///{cube}"]), data=st.data())
    def one_read(template: str, data: st.DataObject) -> None:
        uri = template
        for name in ("cube", "id", "name", "role"):
            if "{" + name + "}" in uri:
                uri = uri.replace("{" + name + "}", data.draw(parts))
        counts["cases"] += 1
        try:
            result = portal.call(lambda: _read_with_deadline(client, uri))
            for content in result.contents:
                json.loads(content.text)
        except MCPError:
            counts["errors"] += 1
        except ValueError:
            counts["errors"] += 1  # the client refused a URI it cannot even send
        assert watcher.messages == [], f"{uri!r} raised: {watcher.messages}"

    one_read()
    print(f"resource fuzz: {counts['cases']} URIs, {counts['errors']} answered with an error, 0 unexpected failures")


async def _call_with_deadline(client: Client, name: str, arguments: dict[str, Any]):
    with anyio.fail_after(60):
        return await client.call_tool(name, arguments)


async def _read_with_deadline(client: Client, uri: str):
    with anyio.fail_after(30):
        return await client.read_resource(uri, cache_mode="bypass")


def _short(arguments: dict[str, Any]) -> str:
    text = repr(arguments)
    return text if len(text) < 300 else text[:300] + "…"
