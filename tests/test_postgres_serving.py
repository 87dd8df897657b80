"""Serving cubes from the PostgreSQL store (issue 28): one memory, several servers.

Each server is a real MCP server (in-process ``mcp.Client``) over its own data folder whose
``config.toml`` names one store (``[store] url``), on a real PostgreSQL 18 with pgvector, the
real embedding model. What one server writes, another finds at once; its graph, its
subscribers and its access rules follow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from support import CLIENT_INFO, error, ok, read_json

from memory import MemoryHome
from server.app import build_server

pytestmark = pytest.mark.postgres


def store_home(folder: Path, url: str, embedder: Any) -> MemoryHome:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(f"[store]\nurl = {url!r}\n", encoding="utf-8")
    return MemoryHome(folder, embedder=embedder)


@pytest.fixture
def servers(tmp_path: Path, postgres_database: str, shared_embedder: Any) -> Callable[..., AbstractAsyncContextManager[Client]]:
    """Open a client on a new server whose data folder is ``tmp_path / name``, on this test's store."""

    @asynccontextmanager
    async def open_server(name: str, **options: Any) -> AsyncIterator[Client]:
        home = store_home(tmp_path / name, postgres_database, shared_embedder)
        try:
            async with Client(build_server(home, warm_up=False), client_info=CLIENT_INFO, **options) as client:
                yield client
        finally:
            home.close()

    return open_server


async def eventually(check: Callable[[], Any], within_s: float = 1.0) -> Any:
    """Call ``check`` until it returns something true; fail after ``within_s``."""
    with anyio.fail_after(within_s):
        while not (found := await check()):
            await anyio.sleep(0.02)
    return found


@pytest.mark.anyio
async def test_a_cube_in_the_store_answers_every_kind_of_call(servers) -> None:
    async with servers("laptop") as client:
        added = await ok(client, "memory_add", text="Grace is Maya's mentor at Stripe.", tags=["work"])
        [memory_id] = added["ids"]
        found = await ok(client, "memory_search", query="Who mentors Maya?")
        assert found["hits"][0]["id"] == memory_id
        got = await ok(client, "memory_get", ids=[memory_id])
        assert got["memories"][0]["tags"] == ["work"]
        await ok(client, "memory_update", id=memory_id, text="Grace is Maya's mentor at Google.")
        history = await ok(client, "memory_history", id=memory_id)
        assert [v["op"] for v in history["versions"]] == ["add", "update"]
        graph = await ok(client, "memory_graph", entity="Maya")
        assert any(m["id"] == memory_id for m in graph["memories"])
        await ok(client, "memory_archive", ids=[memory_id])
        assert (await read_json(client, "memory://default/stats"))["archived"] == 1
        assert "no memory" in await error(client, "memory_get", ids=["mem_01aaaaaaaaaaaaaaaaaaaaaaaa"])


@pytest.mark.anyio
async def test_two_servers_on_one_store_share_one_memory(servers) -> None:
    async with servers("laptop") as laptop, servers("desktop") as desktop:
        [memory_id] = (await ok(laptop, "memory_add", text="The team offsite is in Lisbon in May."))["ids"]

        async def desktop_finds(word: str) -> bool:
            hits = (await ok(desktop, "memory_search", query="Where is the team offsite?"))["hits"]
            return bool(hits) and hits[0]["id"] == memory_id and word in hits[0]["text"]

        await eventually(lambda: desktop_finds("Lisbon"))
        await ok(laptop, "memory_update", id=memory_id, text="The team offsite is in Porto in May.")
        await eventually(lambda: desktop_finds("Porto"))
        graph = await ok(desktop, "memory_graph", entity="Porto")
        assert [m["id"] for m in graph["memories"]] == [memory_id]
        await ok(laptop, "memory_archive", ids=[memory_id])

        async def desktop_misses() -> bool:
            hits = (await ok(desktop, "memory_search", query="Where is the team offsite?"))["hits"]
            return memory_id not in [h["id"] for h in hits]

        await eventually(desktop_misses)


@pytest.mark.anyio
async def test_a_subscriber_on_one_server_hears_a_write_on_another(servers) -> None:
    async with servers("laptop") as laptop, servers("desktop") as desktop:
        [memory_id] = (await ok(laptop, "memory_add", text="Zoe kayaks on Sundays."))["ids"]
        uri = f"memory://default/items/{memory_id}"
        await anyio.sleep(0.6)  # the desktop's listener is up (it starts with the server)
        async with desktop.listen(resource_subscriptions=[uri]) as subscription:
            await ok(laptop, "memory_update", id=memory_id, text="Zoe kayaks on Saturdays.")
            with anyio.fail_after(2):
                event = await subscription.__anext__()
        assert uri in str(event)


@pytest.mark.anyio
async def test_the_stores_access_rules_hold_on_every_server(servers, postgres_database: str) -> None:
    from memory.access_rules import AccessConfig
    from memory.store.postgres.access import administer

    async with servers("laptop") as laptop, servers("desktop") as desktop:
        await ok(laptop, "memory_add", text="The safe's code is 4417.", cube="private")
        await ok(desktop, "memory_search", query="safe code", cube="private")  # no rules yet: open to every client
        rules = AccessConfig.model_validate({"default": "write", "clients": {CLIENT_INFO.name: {"private": "none"}}})
        await anyio.to_thread.run_sync(lambda: administer(postgres_database, push=rules))

        async def refused_on(client: Client) -> bool:
            result = await client.call_tool("memory_search", {"query": "safe code", "cube": "private"})
            return result.is_error

        # Each server hears the change (NOTIFY at commit) and reads the rules again, polling nothing.
        await eventually(lambda: refused_on(laptop), within_s=1.0)
        await eventually(lambda: refused_on(desktop), within_s=1.0)
        assert "private" not in str(await read_json(desktop, "memory://cubes"))
        assert (await ok(desktop, "memory_search", query="anything"))["cube"] == "default"  # other cubes stay open


@pytest.mark.anyio
async def test_a_server_on_its_own_role_serves_and_cannot_change_the_rules(
    tmp_path: Path, postgres_url: str, postgres_database: str, shared_embedder: Any
) -> None:
    """The deployment the README describes: the admin creates the tables and grants the servers' role."""
    from postgres_support import login_role
    from psycopg import conninfo

    from memory.errors import Unavailable
    from memory.store.postgres.access import administer

    with login_role(postgres_url, postgres_database, "memcube_server") as server_url:
        administer(postgres_database, grant=str(conninfo.conninfo_to_dict(server_url)["user"]))
        home = store_home(tmp_path / "server", server_url, shared_embedder)
        try:
            async with Client(build_server(home, warm_up=False), client_info=CLIENT_INFO) as client:
                [memory_id] = (await ok(client, "memory_add", text="Otto waters the ferns on Fridays."))["ids"]
                hits = (await ok(client, "memory_search", query="Who waters the ferns?"))["hits"]
                assert hits[0]["id"] == memory_id
                graph = await ok(client, "memory_graph", entity="Otto")
                assert [m["id"] for m in graph["memories"]] == [memory_id]
        finally:
            home.close()
        with pytest.raises(Unavailable, match="permission denied|may not change"):
            administer(server_url, push=home.config.access)


def test_what_only_a_data_folder_has_says_so_on_a_store_home(
    tmp_path: Path, postgres_database: str, shared_embedder: Any
) -> None:
    from memory.errors import InvalidInput, Unavailable
    from memory.io.backup import backup_home

    home = store_home(tmp_path / "home", postgres_database, shared_embedder)
    try:
        cube = home.cube("default")
        cube.add([{"text": "Rosa repots the basil in April."}])
        with pytest.raises(InvalidInput, match="pg_dump"):
            backup_home(home, tmp_path / "backup")
        with pytest.raises(Unavailable, match="lives in the PostgreSQL store"):
            cube.folder_store.integrity()
        assert home.cube_names() == ["default"] and not (tmp_path / "home" / "cubes" / "default" / "memory.db").exists()
    finally:
        home.close()


def test_the_way_back_a_store_cube_exported_imports_into_a_data_folder(
    tmp_path: Path, postgres_database: str, shared_embedder: Any
) -> None:
    """``memcube --store URL export`` then ``memcube import`` in a folder home: the memories, their
    history, vectors and graph come back to a data folder as they were in the store."""
    from test_portable import QUERIES, VOLATILE, _fill, _search

    from memory.io.archive import export_cube, import_archive

    store = store_home(tmp_path / "store-home", postgres_database, shared_embedder)
    folder = MemoryHome(tmp_path / "folder-home", embedder=shared_embedder)
    try:
        source = store.cube("work", create=True)
        ids = _fill(source)
        archive = tmp_path / "work.memcube"
        export_cube(source, archive, with_vectors=True)
        result = import_archive(folder, archive)
        assert (result.imported, result.vectors_reused, result.reembedded) == (len(ids), len(ids), 0)
        target = folder.cube("work")
        moved = source.store.get_many(list(ids.values()))
        restored = target.store.get_many(list(ids.values()))
        assert [m.model_dump(exclude=VOLATILE) for m in restored] == [m.model_dump(exclude=VOLATILE) for m in moved]
        for memory_id in ids.values():
            assert target.history(memory_id)[:-1] == source.history(memory_id)  # plus the import's own version
        assert {q: _search(target, q) for q in QUERIES} == {q: _search(source, q) for q in QUERIES}
        assert [r.object for r in target.graph("Carol").relations] == ["Lisbon"]
    finally:
        store.close()
        folder.close()


def test_a_server_whose_graph_folder_went_derives_it_again_from_the_store(
    tmp_path: Path, postgres_database: str, shared_embedder: Any
) -> None:
    import shutil

    home = store_home(tmp_path / "laptop", postgres_database, shared_embedder)
    try:
        [added] = home.cube("default").add([{"text": "Nadia fixed the garden fence.", "entities": ["Nadia"]}])
        assert [m.id for m in home.cube("default").graph("Nadia").memories] == [added.id]  # the change log is applied
    finally:
        home.close()
    shutil.rmtree(tmp_path / "laptop" / "cubes" / "default" / "graph")  # its place in the log is kept in the store
    again = store_home(tmp_path / "laptop", postgres_database, shared_embedder)
    try:
        assert [m.id for m in again.cube("default").graph("Nadia").memories] == [added.id]
    finally:
        again.close()


def test_the_browser_follows_the_stores_access_rules(tmp_path: Path, postgres_database: str, shared_embedder: Any) -> None:
    """The memory browser (``memcube ui``) on a store home checks the store's rules, not config.toml's."""
    from memory.access_rules import AccessConfig
    from memory.store.postgres.access import administer
    from server.ui.security import UI_CLIENT
    from server.ui.service import Forbidden, UiService

    home = store_home(tmp_path / "home", postgres_database, shared_embedder)
    try:
        home.cube("private", create=True).add([{"text": "The safe's code is 4417."}])
        service = UiService(home)
        assert service.cube("private", "read", action="list").name == "private"
        administer(postgres_database, push=AccessConfig.model_validate({"clients": {UI_CLIENT: {"private": "none"}}}))
        home.store.refresh_access()  # what the server's listener does when it hears the change
        with pytest.raises(Forbidden, match="store's access rules"):
            service.cube("private", "read", action="list")
    finally:
        home.close()
