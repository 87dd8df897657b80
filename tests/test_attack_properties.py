"""Property tests for issue 13: no resource URI reaches a cube the client may not read, and
no archive record is stored that a read path cannot serve."""

from __future__ import annotations

import itertools
import json
import string
import unicodedata
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal
from attack_support import memory_id, write_archive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.uri_template import UriTemplate
from mcp.types import Implementation

from memory import MemoryHome
from memory.doctor import check_cube
from memory.errors import InvalidInput
from memory.io.archive import import_archive
from server.app import build_server

RULES = """
[access]
default = "none"

[access.clients.owner]
"*" = "write"

[access.clients.worker]
work = "write"
"""
SECRET = "The safe code is 4471, behind the painting in the hall"
TAILS = ["recent", "items/{secret}", "entities/hall", "stats", "profile", "profile/family", "tasks", "working-set", "cubes", ""]

# -- URIs ---------------------------------------------------------------------------------


def _spellings(char: str) -> st.SearchStrategy[str]:
    """Ways to write one character of a cube name that a lax decoder might read as that character."""
    code = ord(char)
    options = [char, f"%{code:02X}", f"%{code:02x}", f"%25{code:02X}", char.upper(), char.lower()]
    if char in string.ascii_letters:
        options.append(chr(code + 0xFEE0))  # FULLWIDTH LATIN, which NFKC folds to ASCII
        options.append(unicodedata.normalize("NFD", char + "\u0301"))  # with a combining accent
    options += {"o": ["\u043e", "\u00f6"], "e": ["\u0435", "e\u0301", "\u00e9"], "h": ["\u04bb"], "m": ["\u217f"]}.get(char, [])
    return st.sampled_from(options)


JUNK = ["", "\n", "%0A", "%0a", " ", "%20", ".", "%2E", "%00", "\u200b", "/", "%2F", "@", ":80", "user@", "#", "?", "\r\n"]


def _mostly(usual: str, others: list[str]) -> st.SearchStrategy[str]:
    """``usual`` half the time: an attack changes one or two things, not everything at once."""
    return st.one_of(st.just(usual), st.sampled_from(others))


@st.composite
def memory_uris(draw) -> str:
    scheme = draw(_mostly("memory://", ["MEMORY://", "Memory://", "memory:/", "memory:///", " memory://"]))
    cube = "".join(draw(st.just(c) | _spellings(c)) for c in draw(st.sampled_from(["home", "Home", "cubes"])))
    cube = draw(_mostly("", JUNK)) + cube + draw(_mostly("", JUNK))
    tail = draw(st.sampled_from(TAILS)) + draw(_mostly("", ["/", "?x=1", "#f", "%20", "\n", "%2F..%2Fwork"]))
    if draw(st.booleans()):
        cube = unicodedata.normalize(draw(st.sampled_from(["NFC", "NFD", "NFKC", "NFKD"])), cube)
    return f"{scheme}{cube}/{tail}"


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    home = MemoryHome(tmp_path_factory.mktemp("templates"))
    server = build_server(home, warm_up=False)
    with start_blocking_portal() as portal:
        listed = portal.call(server.list_resource_templates)
    home.close()
    return [UriTemplate.parse(t.uri_template) for t in listed]


@pytest.mark.slow  # 2,000 generated URIs (63 s loaded); .ci/run runs it
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(uri=st.one_of(memory_uris(), st.text(max_size=40).map(lambda t: "memory://" + t)))
def test_the_cube_a_handler_would_read_is_the_cube_access_control_checked(templates, uri):
    """For any URI: access control refuses it, or every template that matches it hands the handler the checked cube."""
    from server.access import Refused, _targets

    try:
        checked = _targets("resources/read", {"uri": uri})
    except Refused:
        return
    cubes = {cube for cube, _, _ in checked} if checked else set()
    for template in templates:
        params = template.match(uri)
        if params is not None and "cube" in params:
            assert {params["cube"]} == cubes, (
                f"{uri!r}: the handler would read {params['cube']!r}, access control checked {cubes}"
            )


@pytest.mark.slow
def test_no_uri_reaches_a_cube_the_client_may_not_read(tmp_path, shared_embedder):
    (tmp_path / "config.toml").write_text(RULES)
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    owner_info, worker_info = Implementation(name="owner", version="1"), Implementation(name="worker", version="1")
    try:
        with start_blocking_portal() as portal:
            owner = portal.wrap_async_context_manager(
                Client(build_server(home, warm_up=False), mode="legacy", client_info=owner_info)
            )
            with owner as client:
                added = portal.call(
                    lambda: client.call_tool(
                        "memory_add", {"text": SECRET, "cube": "home", "entities": ["Hall"], "type": "task", "role": "family"}
                    )
                )
                secret_id = added.structured_content["ids"][0]
                for cube in ("work", "cubes"):
                    portal.call(lambda c=cube: client.call_tool("memory_add", {"text": f"A memory of {c}", "cube": c}))
            worker = portal.wrap_async_context_manager(
                Client(build_server(home, warm_up=False), mode="legacy", client_info=worker_info)
            )
            with worker as client:

                def read(uri: str) -> str | None:
                    try:
                        result = portal.call(lambda: client.read_resource(uri, cache_mode="bypass"))
                    except Exception:  # refused, unknown or invalid: nothing was read
                        return None
                    return "\n".join(getattr(c, "text", "") for c in result.contents)

                # The check is not vacuous: the granted cube is served, the other is not.
                assert "A memory of work" in read("memory://work/recent")
                assert read("memory://home/recent") is None

                @settings(max_examples=400, deadline=None)
                @given(uri=memory_uris())
                def probe(uri: str) -> None:
                    text = read(uri.replace("{secret}", secret_id))
                    if text is not None:
                        assert SECRET not in text and secret_id not in text, uri
                        assert '"cube": "home"' not in text and '"cube": "cubes"' not in text, uri

                probe()
    finally:
        home.close()


# -- archive records ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
GOOD = {
    "tags": st.lists(st.text(min_size=1, max_size=10), max_size=4),
    "entities": st.lists(st.sampled_from(["Lena", "Acme", "Tom", " ", "#x"]), max_size=3),
    "relations": st.lists(
        st.fixed_dictionaries({"subject": st.just("Tom"), "predicate": st.just("works_at"), "object": st.just("Acme")}),
        max_size=2,
    ),
    "metadata": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    "importance": st.floats(0, 1),
    "confidence": st.floats(0, 1),
    "type": st.sampled_from(["note", "fact", "task", "goal", "preference", "Event"]),
    "status": st.sampled_from(["active", "archived", "deleted"]),
    "created_at": st.sampled_from(["2023-05-08", "2023-05-08T13:56:00Z", "2023-05-08T13:56:00+02:00"]),
    "occurred_at": st.sampled_from(["2023-05-08", "2024-02-29T10:00:00Z"]),
    "version": st.integers(1, 5),
    "access_count": st.integers(0, 5),
    "state": st.sampled_from(["todo", "done", "active"]),
    "role": st.sampled_from(["work", "home"]),
    "subject": st.sampled_from(["coffee", "Editor Theme"]),
    "session_id": st.sampled_from(["s1", "s2"]),
    "versions": st.just(
        [{"version": 1, "op": "add", "at": "2023-05-08T13:56:00Z", "client": "x", "changes": {"text": {"old": None, "new": "t"}}}]
    ),
    "feedback": st.just([{"at": "2023-05-08T13:56:00Z", "tried": "a", "result": "b"}]),
    "kind": st.sampled_from(["plaintext", "activation"]),
    "parent_id": st.just(memory_id(99)),
    "supersedes": st.just(memory_id(98)),
}


@st.composite
def archive_records(draw) -> dict:
    """A record an export could write (some fields, valid values), then, half the time, one to three fields set to any JSON."""
    record = {"id": memory_id(draw(st.integers(1, 10**9))), "text": draw(st.text(min_size=1, max_size=60))}
    for field in draw(st.lists(st.sampled_from(sorted(GOOD)), max_size=8, unique=True)):
        record[field] = draw(GOOD[field])
    if draw(st.booleans()):
        for field in draw(
            st.lists(st.sampled_from(sorted(GOOD) + ["id", "text", "unknown_field"]), min_size=1, max_size=3, unique=True)
        ):
            record[field] = draw(json_values)
    return record


_cubes = itertools.count()


@pytest.mark.slow
def test_an_import_refuses_a_record_clearly_or_stores_what_every_read_path_serves(tmp_path, shared_embedder):
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    outcomes = {"stored": 0, "refused": 0}
    try:
        with start_blocking_portal() as portal:
            with portal.wrap_async_context_manager(Client(build_server(home, warm_up=False), mode="legacy")) as client:

                def call(tool: str, **arguments) -> dict:
                    result = portal.call(lambda: client.call_tool(tool, arguments))
                    assert not result.is_error, f"{tool}: {result.content[0].text}"
                    return result.structured_content

                def resource(uri: str) -> object:
                    return json.loads(portal.call(lambda: client.read_resource(uri, cache_mode="bypass")).contents[0].text)

                @settings(max_examples=80, deadline=None)
                @given(record=archive_records())
                def import_one(record: dict) -> None:
                    cube = f"p{next(_cubes)}"
                    archive = write_archive(Path(tmp_path) / f"{cube}.memcube", [record], cube=cube)
                    try:
                        import_archive(home, archive)
                    except InvalidInput as exc:
                        assert "memories.jsonl line 1" in str(exc)
                        outcomes["refused"] += 1
                        return
                    outcomes["stored"] += 1
                    [stored] = home.cube(cube).get([record["id"]])
                    call("memory_search", query=stored.text, cube=cube, include_archived=True)
                    call("memory_get", ids=stored.id, cube=cube)
                    call("memory_history", id=stored.id, cube=cube)
                    resource(f"memory://{cube}/recent")
                    resource(f"memory://{cube}/stats")
                    resource(f"memory://{cube}/tasks")
                    resource(f"memory://{cube}/profile")
                    if stored.status != "deleted":
                        resource(f"memory://{cube}/items/{stored.id}")
                    for entity in stored.entities:
                        if stored.status == "active":
                            call("memory_graph", entity=entity, cube=cube)
                        else:  # archived and deleted memories leave the graph: it must not show them
                            result = portal.call(lambda e=entity: client.call_tool("memory_graph", {"entity": e, "cube": cube}))
                            shown = (result.structured_content or {}).get("memories", []) if not result.is_error else []
                            assert result.is_error or stored.id not in [m["id"] for m in shown], result
                            assert not result.is_error or "no entity" in result.content[0].text, result.content[0].text
                    report = check_cube(home.cube(cube))
                    assert report.healthy and not report.findings, report.render()

                import_one()
    finally:
        home.close()
    print("archive records:", outcomes)
    assert outcomes["stored"] and outcomes["refused"], outcomes  # both branches were exercised
