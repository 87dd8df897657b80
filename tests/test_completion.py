"""completion/complete and logging/setLevel (issue 15).

Clients complete cube names, entity names, roles and tags in resource templates and
prompt arguments, within what the [access] rules let them read; legacy clients may set
the log level.
"""

from __future__ import annotations

import logging

import pytest
from mcp.types import PromptReference, ResourceTemplateReference

from memory import MemoryHome

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


ENTITIES = ResourceTemplateReference(type="ref/resource", uri="memory://{cube}/entities/{name}")
PROFILE_ROLE = ResourceTemplateReference(type="ref/resource", uri="memory://{cube}/profile/{role}")
RECALL = PromptReference(type="ref/prompt", name="recall")
START = PromptReference(type="ref/prompt", name="start")


def _fill(home: MemoryHome) -> None:
    home.cube(create=True).add(
        [
            {"text": "Marco Bianchi leads the backend team", "type": "fact", "role": "work", "tags": ["team"]},
            {
                "text": "Maria runs the bakery on the corner",
                "type": "fact",
                "role": "home",
                "tags": ["neighbours"],
                "entities": ["Maria"],
            },
        ]
    )
    home.cube("garden", create=True).add([{"text": "Tomatoes go along the south fence", "tags": ["garden"]}])


async def test_completion_offers_cubes_entities_roles_and_tags(home, connect):
    _fill(home)
    async with connect(home) as client:
        cubes = await client.complete(RECALL, {"name": "cube", "value": "ga"})
        assert cubes.completion.values == ["garden"]
        names = await client.complete(ENTITIES, {"name": "name", "value": "mar"}, {"cube": "default"})
        assert names.completion.values == ["Marco Bianchi", "Maria"]
        roles = await client.complete(PROFILE_ROLE, {"name": "role", "value": "w"}, {"cube": "default"})
        assert roles.completion.values == ["work"]
        start_roles = await client.complete(START, {"name": "role", "value": ""})
        assert start_roles.completion.values == ["home", "work"]
        topics = await client.complete(RECALL, {"name": "topic", "value": "neigh"})
        assert topics.completion.values == ["neighbours"]
        # Another cube's names come from that cube.
        garden = await client.complete(RECALL, {"name": "topic", "value": "gar"}, {"cube": "garden"})
        assert garden.completion.values == ["garden"]


async def test_completion_stays_within_what_the_client_may_read(tmp_path, shared_embedder, connect):
    (tmp_path / "config.toml").write_text(
        '[access]\ndefault = "none"\n[access.clients."memcube-tests"]\n"*" = "read"\ngarden = "none"\n'
    )
    memory_home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        _fill(memory_home)
        async with connect(memory_home) as client:
            cubes = await client.complete(RECALL, {"name": "cube", "value": ""})
            assert cubes.completion.values == ["default"]
            hidden = await client.complete(RECALL, {"name": "topic", "value": ""}, {"cube": "garden"})
            assert hidden.completion.values == []
            shown = await client.complete(ENTITIES, {"name": "name", "value": "Mar"}, {"cube": "default"})
            assert shown.completion.values == ["Marco Bianchi", "Maria"]
    finally:
        memory_home.close()


@pytest.mark.parametrize("mode", ["legacy"])
async def test_legacy_clients_set_the_log_level(home, connect):
    logger = logging.getLogger("memory")
    before = logger.level
    try:
        async with connect(home) as client:
            await client.set_logging_level("debug")
            assert logger.level == logging.DEBUG
            await client.set_logging_level("error")
            assert logger.level == logging.ERROR
    finally:
        logger.setLevel(before)
