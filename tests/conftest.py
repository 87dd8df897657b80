"""Shared fixtures: one loaded embedding model, a fresh MemCube home per test, MCP clients.

Everything here is real: each test gets its own data directory with a SQLite file
(sqlite-vec, FTS5) and a Kuzu graph; only the ONNX model is shared, because loading it
is the one slow step and it holds no per-test state. (``module_home`` is one home for a whole
module, for seeded data that its tests only read.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver.tools.base import Tool
from support import CLIENT_INFO, ENGINES

from memory import MemoryHome
from memory.retrieval.embedder import Embedder
from server.app import build_server

# Tiers are set in one place: the test itself. A test (or a whole module, through its
# ``pytestmark``) carries ``pytest.mark.slow``, ``pytest.mark.external`` or ``pytest.mark.postgres``
# (needs the PostgreSQL that ``postgres_url`` starts); pyproject's addopts deselects them by
# default, and .ci/run lifts that with ``-m ""``.


@pytest.fixture(scope="session", autouse=True)
def tool_schemas_derived_once() -> Iterator[None]:
    """Every test server registers the same tool functions; the SDK derives each one's argument
    model and JSON schemas from its signature (0.17 s a server, most of a small test). The run
    derives them once per function and signature, and each server gets a copy that calls its own
    function. The key holds the signature's annotations and defaults, so a tool whose published
    arguments depend on the server's home still gets its own schemas.
    """
    derive = Tool.from_function.__func__  # type: ignore[attr-defined]
    derived: dict[tuple[Any, ...], Tool] = {}

    def from_function(cls: type[Tool], fn: Callable[..., Any], *args: Any, **options: Any) -> Tool:
        signature = (repr(fn.__annotations__), repr(fn.__defaults__), repr(fn.__kwdefaults__), fn.__doc__)
        key = (fn.__code__, signature, repr(args), repr(sorted(options.items())))
        if key not in derived:
            derived[key] = derive(cls, fn, *args, **options)
        return derived[key].model_copy(update={"fn": fn})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Tool, "from_function", classmethod(from_function))
        yield


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def shared_embedder() -> Embedder:
    """The default ONNX model (all-MiniLM-L6-v2, int8), loaded once for the whole run.

    Pinned to the integer path: ``compute="auto"`` would let the machine's load pick the path
    in the middle of a run, and tests compare rankings. ``tests/test_int8_compute.py`` tests auto.
    """
    embedder = Embedder(compute="int8")
    embedder.load()
    return embedder


@pytest.fixture
def folder_home(tmp_path, shared_embedder) -> MemoryHome:
    """A MemCube home in this test's temporary directory (a data folder's cubes), closed afterwards."""
    memory_home = MemoryHome(tmp_path, embedder=shared_embedder)
    yield memory_home
    memory_home.close()


@pytest.fixture
def home(folder_home) -> MemoryHome:
    """The home a test works on: a data folder; modules whose tests hold on both engines override it with ``engine_home``."""
    return folder_home


@pytest.fixture(params=ENGINES)
def engine_home(request, tmp_path, shared_embedder) -> Iterator[MemoryHome]:
    """A MemCube home on each engine: a data folder (SQLite), and a fresh database of the test
    PostgreSQL named by ``[store] url`` (postgres tier). A module whose tool tests must hold on
    both engines overrides ``home`` with it: ``@pytest.fixture def home(engine_home): return engine_home``."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database")
        (tmp_path / "config.toml").write_text(f"[store]\nurl = {url!r}\n", encoding="utf-8")
    memory_home = MemoryHome(tmp_path, embedder=shared_embedder)
    yield memory_home
    memory_home.close()


@pytest.fixture(scope="module")
def module_home(tmp_path_factory, shared_embedder) -> MemoryHome:
    """One MemCube home for a whole test module: for seeded data that the module's tests only read."""
    memory_home = MemoryHome(tmp_path_factory.mktemp("module-home"), embedder=shared_embedder)
    yield memory_home
    memory_home.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server with pgvector for the whole session: ``MEMCUBE_TEST_POSTGRES``, or an
    embedded one started on first use (about 6 s) and stopped at the end (tests/postgres_support.py)."""
    from postgres_support import postgres_server  # the driver loads only for the postgres tier

    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database of this test's own on that server, dropped afterwards."""
    from postgres_support import fresh_database

    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture
def postgres_conn(postgres_database: str) -> Iterator[Any]:
    """An autocommit connection to this test's own database, migrated to the current schema."""
    from postgres_support import migrated

    with migrated(postgres_database) as connection:
        yield connection


# The quick tier runs every client test in the modern protocol; its run in the 2025 handshake is
# in the slow tier (.ci/run runs both). Tests of the 2025 handshake itself keep both modes in the
# quick tier by parametrizing ``mode`` directly: ``@pytest.mark.parametrize("mode", ["auto", "legacy"])``.
LEGACY_IN_SLOW_TIER = pytest.param("legacy", marks=pytest.mark.slow)


@pytest.fixture(params=["auto", LEGACY_IN_SLOW_TIER])
def mode(request) -> str:
    """The protocol a client speaks: 'auto' (2026, modern) or 'legacy' (the 2025 handshake Claude Desktop uses)."""
    return request.param


@pytest.fixture
def connect(mode) -> Callable[[MemoryHome], AbstractAsyncContextManager[Client]]:
    """Open an in-process MCP client session on a server over the given home, in this test's mode."""

    @asynccontextmanager
    async def open_client(memory_home: MemoryHome, **options) -> AsyncIterator[Client]:
        server = build_server(memory_home, warm_up=False)
        async with Client(server, mode=mode, client_info=CLIENT_INFO, **options) as client:
            yield client

    return open_client


@pytest.fixture
async def client(home, connect) -> AsyncIterator[Client]:
    """An MCP client session on a server over this test's fresh home."""
    async with connect(home) as session:
        yield session
