"""Shared fixtures: one loaded embedding model, a fresh MemCube home per test, MCP clients.

Everything here is real: each test gets its own data directory with a SQLite file
(sqlite-vec, FTS5) and a Kuzu graph; only the ONNX model is shared, because loading it
is the one slow step and it holds no per-test state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from mcp import Client
from support import CLIENT_INFO

from memory import MemoryHome
from memory.retrieval.embedder import Embedder
from server.app import build_server

# Tiers are set in one place: the test itself. A test (or a whole module, through its
# ``pytestmark``) carries ``pytest.mark.slow`` or ``pytest.mark.external``; pyproject's addopts
# deselects both by default, and .ci/run lifts that with ``-m ""``.


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
def home(tmp_path, shared_embedder) -> MemoryHome:
    """A MemCube home in this test's temporary directory, closed afterwards."""
    memory_home = MemoryHome(tmp_path, embedder=shared_embedder)
    yield memory_home
    memory_home.close()


@pytest.fixture(params=["auto", "legacy"])
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
