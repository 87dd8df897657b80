"""Activation memory: KV caches of a local model, built from memories and reused for answers.

Both backends run for real on tiny Qwen2-shaped models with random weights, built here
(MLX through mlx_lm.load, ONNX Runtime on a decoder with past_key_values): nothing is
downloaded, and the answers are noise, but every cache property holds or fails for real.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from mcp import Client
from random_models import build_mlx_model, build_onnx_model
from support import CLIENT_INFO, error, ok

from memory import MemoryHome
from memory.activation.base import CacheRefused
from memory.activation.engine import ActivationEngine, load_backend
from memory.activation.kv_store import KVStore
from memory.config import LocalModelConfig
from server.app import build_server

BACKENDS = ["mlx", "onnx"]
FACTS = [
    "Maya went to the choir rehearsal on 12 March 2023",
    "Ana knits scarves and ran a half marathon",
    "Tomas quit his job as a pilot in January 2023",
    "Wen opened an online flower shop",
]


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "mlx": build_mlx_model(root / "mlx"),
        "onnx": build_onnx_model(root / "onnx"),
        "mlx-other": build_mlx_model(root / "mlx-other", seed=1),
        "onnx-other": build_onnx_model(root / "onnx-other", seed=1),
    }


def configure(home_dir: Path, model: Path, backend: str) -> None:
    home_dir.mkdir(parents=True, exist_ok=True)
    (home_dir / "config.toml").write_text(f'[local_model]\npath = "{model}"\nbackend = "{backend}"\nmax_tokens = 8\n')


def engine_for(models, backend: str, home: Path, which: str | None = None) -> ActivationEngine:
    return ActivationEngine(LocalModelConfig(path=str(models[which or backend]), backend=backend, max_tokens=8), home)


def kv_files(home: Path) -> list[Path]:
    return sorted(home.glob("cubes/*/kv/*/*.safetensors"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_logits_from_a_warm_cache_equal_a_cold_prefill(models, backend, tmp_path):
    model = load_backend(models[backend], "tiny", backend)
    context = model.encode("Memories: [mem_1] Maya went to a choir rehearsal.\n[mem_2] Ana knits.\n")
    question = model.encode("Question: what does Ana do?\nAnswer:")

    cold, _ = model.prefill(model.new_cache(), context + question)
    _, warm_cache = model.prefill(model.new_cache(), context)
    path = tmp_path / "cache.safetensors"
    model.save_cache(warm_cache, path, {"memcube": "{}"})
    warm, _ = model.prefill(model.copy_cache(model.load_cache(path)), question)

    assert cold.shape == warm.shape
    np.testing.assert_allclose(warm, cold, rtol=1e-4, atol=1e-4)


def test_both_backends_compute_the_same_network(models):
    """The ONNX decoder built here is the same Qwen2 network mlx-lm runs: same weights, same logits."""
    mlx_model, onnx_model = load_backend(models["mlx"], "tiny", "mlx"), load_backend(models["onnx"], "tiny", "onnx")
    tokens = mlx_model.encode("Wen opened an online flower shop.")
    assert tokens == onnx_model.encode("Wen opened an online flower shop.")
    a, _ = mlx_model.prefill(mlx_model.new_cache(), tokens)
    b, _ = onnx_model.prefill(onnx_model.new_cache(), tokens)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stored_cache_is_byte_identical_after_a_generation_used_it(models, backend, home):
    cube = home.cube("default")
    cube.add([{"text": t} for t in FACTS])
    memories = cube.recent(10)
    engine = engine_for(models, backend, home.root)
    engine.warm(cube.folder, memories)
    [path] = kv_files(home.root)
    on_disk = path.read_bytes()
    [entry] = engine.store(cube.folder).entries()
    in_ram = _arrays(engine.backend(), entry.cache)

    first = engine.ask(cube.folder, memories[:2], "What does Ana knit?")
    second = engine.ask(cube.folder, memories[:2], "What does Ana knit?")

    assert first.reused_tokens == entry.meta.tokens > 0
    assert first.answer == second.answer  # greedy decoding from an unchanged cache
    assert path.read_bytes() == on_disk
    after = _arrays(engine.backend(), entry.cache)
    assert len(after) == len(in_ram)
    for x, y in zip(in_ram, after, strict=True):
        np.testing.assert_array_equal(x, y)


def _arrays(backend, cache) -> list[np.ndarray]:
    """A cache's contents as numpy arrays (its whole buffers, including any preallocated tail)."""
    if backend.identity.backend == "mlx":
        return [np.array(a) for layer in cache for a in (layer.keys, layer.values)] + [
            np.array([layer.offset for layer in cache])
        ]
    return [a for pair in cache for a in pair]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cache_survives_a_restart(models, backend, home):
    cube = home.cube("default")
    cube.add([{"text": t} for t in FACTS])
    memories = cube.recent(10)
    engine_for(models, backend, home.root).warm(cube.folder, memories)

    restarted = engine_for(models, backend, home.root)  # a new process: nothing in RAM
    [entry] = restarted.store(cube.folder).entries()
    assert entry.cache is None and entry.meta.ids == [m.id for m in memories]
    outcome = restarted.ask(cube.folder, memories[:1], "When did Maya go to the choir rehearsal?")
    assert outcome.reused_tokens == entry.meta.tokens
    assert outcome.prefilled_tokens < entry.meta.tokens


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cache_from_another_model_is_refused(models, backend, home):
    cube = home.cube("default")
    cube.add([{"text": t} for t in FACTS])
    engine_for(models, backend, home.root).warm(cube.folder, cube.recent(10))
    [path] = kv_files(home.root)

    other = engine_for(models, backend, home.root, which=f"{backend}-other")
    assert other.backend().identity != engine_for(models, backend, home.root).backend().identity
    store: KVStore = other.store(cube.folder)
    assert store.entries() == []  # kept apart: each model has its own folder
    smuggled = store.folder / path.name
    store.folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, smuggled)
    with pytest.raises(CacheRefused, match="built by"):
        store.load(smuggled)
    store.scan()
    assert store.entries() == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("change", ["memory_update", "memory_archive", "memory_delete"])
@pytest.mark.anyio
async def test_a_cache_is_dropped_when_any_of_its_memories_changes(models, backend, change, tmp_path, shared_embedder):
    configure(tmp_path, models[backend], backend)
    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    async with Client(server, client_info=CLIENT_INFO) as client:
        ids = (await ok(client, "memory_add", memories=[{"text": t} for t in FACTS]))["ids"]
        await server.scheduler.settled()
        held = [f for f in kv_files(tmp_path) if ids[1] in f.read_bytes().decode("latin-1")]
        assert held, "the scheduler warmed a cache of the new memories"

        if change == "memory_update":
            await ok(client, change, id=ids[1], text="Ana knits hats now")
        else:
            await ok(client, change, ids=ids[1])
        await server.scheduler.settled()

        assert not any(f.exists() for f in held)
        for path in kv_files(tmp_path):  # any cache built since holds the new version or not the memory at all
            assert f'"{ids[1]}",1]' not in path.read_bytes().decode("latin-1")
    server.memory_home.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_change_made_by_another_process_is_caught_before_the_cache_is_used(models, backend, home):
    cube = home.cube("default")
    ids = [o.id for o in cube.add([{"text": t} for t in FACTS])]
    engine = engine_for(models, backend, home.root)
    engine.warm(cube.folder, cube.recent(10))
    cube.update(ids[0], {"text": "Maya went to a jazz concert"})  # no scheduler event: a library write
    live = cube.store.live_versions()
    assert engine.sweep(cube.folder, live) == 1
    assert kv_files(home.root) == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.anyio
async def test_memory_ask_answers_with_cited_ids_through_an_mcp_client(models, backend, tmp_path, shared_embedder):
    configure(tmp_path, models[backend], backend)
    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    async with Client(server, client_info=CLIENT_INFO) as client:
        ids = (await ok(client, "memory_add", memories=[{"text": t} for t in FACTS]))["ids"]
        await server.scheduler.settled()

        result = await ok(client, "memory_ask", question="When did Maya go to the choir rehearsal?")

        assert isinstance(result["answer"], str)
        # The memories the model read are context_ids (issue 27); cited_ids, those its answer uses, are
        # among them (the answer of random weights is noise: tests/test_ask_citations.py checks which).
        assert ids[0] in result["context_ids"]
        assert set(result["cited_ids"]) <= set(result["context_ids"]) <= set(ids)
        assert result["model"]["backend"] == backend
        assert result["reused_tokens"] > 0, "the scheduler had warmed the new memories"
        status = (await client.read_resource("memory://default/working-set", cache_mode="bypass")).contents[0].text
        assert '"asks": 1' in status and '"hits"' in status
    server.memory_home.close()


@pytest.mark.anyio
async def test_memory_ask_without_a_local_model_says_how_to_configure_one(tmp_path, shared_embedder):
    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    async with Client(server, client_info=CLIENT_INFO) as client:
        await ok(client, "memory_add", text="Tomas quit his job as a pilot")
        message = await error(client, "memory_ask", question="What happened to Tomas?")
    assert "MEMCUBE_LOCAL_MODEL" in message and "memcube model pull" in message
    server.memory_home.close()


def test_a_batch_of_memories_enters_the_working_set_in_predicted_rank_order(home):
    """One memory_add batch shares its created_at, and its ids differ in random bits: the prompt order
    must come from the prediction, not from the ids, or it differs from machine to machine (and a
    small model's answer with it: CI once answered with a person's name where every local run gave the dog's)."""
    from memory.activation.scheduler import Scheduler

    cube = home.cube("default")
    ids = [outcome.id for outcome in cube.add([{"text": t} for t in FACTS])]
    scheduler = Scheduler(home)
    scheduler.scene("default").recent_adds.extend(ids)  # the newest add is the likeliest next

    predicted = [m.id for m in scheduler.predict("default")]

    assert predicted == list(reversed(ids))
