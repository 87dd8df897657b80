"""Integer arithmetic for the embedding model's int8 weights, held to the float path it replaces.

``memory.int8_compute`` rewrites ``MatMul(x, Cast(int8 W) * scale)`` into ONNX Runtime's
``MatMulNBits`` with the same weights. These tests check that the weights survive bit for
bit, that the vectors stay those of the float path, and that a cube never mixes the two.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from memory import MemoryHome, SearchQuery
from memory.config import load_config
from memory.errors import InvalidInput
from memory.retrieval.embedder import INT8_COMPUTE_SUFFIX, Embedder, _default_model_file
from memory.retrieval.int8_compute import BLOCK, rewrite

TEXTS = [
    "Alice: I finally booked the flight to Lisbon for the conference in May.",
    "what did Bob say about the violin lessons?",
    "Grocery list: oat milk, lemons, two kinds of bread",
    "Der Zug nach München hatte wieder Verspätung — 40 Minuten!",
    "réunion annulée; on se revoit jeudi à 14h",
    "ok",
    "#release notes for v2.3: faster search, @carmen fixed the importer (see https://example.org/pr/42)",
    " ".join(["a long memory about the garden and the orchard and the river"] * 30),  # truncated at 256 tokens
]


@pytest.fixture(scope="module")
def float_embedder() -> Embedder:
    embedder = Embedder(compute="float")
    embedder.load()
    return embedder


def _int8_model(weights: np.ndarray, scale: np.ndarray, *, extra_reader: bool = False) -> onnx.ModelProto:
    """y = x @ (float(W) * scale): the pattern the default model uses for every linear layer."""
    inner, columns = weights.shape
    nodes = [
        helper.make_node("Cast", ["w_int8"], ["w_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["w_float", "scale"], ["w"]),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", columns])]
    if extra_reader:  # something else reads the float weights: they must stay
        nodes.append(helper.make_node("Identity", ["w"], ["w_copy"]))
        outputs.append(helper.make_tensor_value_info("w_copy", TensorProto.FLOAT, [inner, columns]))
    graph = helper.make_graph(
        nodes,
        "int8-linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", inner])],
        outputs,
        [numpy_helper.from_array(weights, "w_int8"), numpy_helper.from_array(scale, "scale")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


def test_the_rewritten_product_keeps_the_int8_weights_and_scales_exactly():
    rng = np.random.default_rng(5)
    weights = rng.integers(-127, 128, size=(BLOCK * 4, 48), dtype=np.int8)
    scale = rng.uniform(0.001, 0.02, size=(1, 48)).astype(np.float32)
    x = rng.standard_normal((5, BLOCK * 4)).astype(np.float32)
    model = _int8_model(weights, scale)
    expected = _run(model, x)

    assert rewrite(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MatMulNBits"]
    assert {i.name for i in model.graph.initializer} == {"w__int8", "w__scales"}
    packed = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w__int8"))
    unpacked = packed.reshape(48, -1).T.astype(np.int16) - 128  # column blocks back to [K, N]
    assert np.array_equal(unpacked, weights)
    got = _run(model, x)
    # Only the activations are rounded (to int8 per block of BLOCK values): close, not equal.
    assert np.abs(got - expected).max() <= 0.02 * np.abs(expected).max()
    assert not np.array_equal(got, expected)


def test_products_that_do_not_fit_the_pattern_are_left_as_they_are():
    rng = np.random.default_rng(6)
    odd_inner = _int8_model(rng.integers(-127, 128, size=(BLOCK + 3, 8), dtype=np.int8), np.ones((1, 8), np.float32))
    assert rewrite(odd_inner) == 0  # the inner size is not a whole number of blocks
    shared = _int8_model(rng.integers(-127, 128, size=(BLOCK, 8), dtype=np.int8), np.ones((1, 8), np.float32), extra_reader=True)
    assert rewrite(shared) == 0  # the float weights are read elsewhere too
    per_row = _int8_model(rng.integers(-127, 128, size=(BLOCK, 8), dtype=np.int8), np.ones((BLOCK, 1), np.float32))
    assert rewrite(per_row) == 0  # one scale per input row is not what MatMulNBits stores
    assert [n.op_type for n in per_row.graph.node] == ["Cast", "Mul", "MatMul"]


def test_every_linear_layer_of_the_default_model_runs_in_integer_arithmetic(shared_embedder):
    model = onnx.load_model(str(_default_model_file()))
    before = sum(n.op_type == "MatMul" for n in model.graph.node)
    assert rewrite(model) == 36  # 6 layers x (query, key, value, output, intermediate, output)
    assert sum(n.op_type == "MatMulNBits" for n in model.graph.node) == 36
    assert sum(n.op_type == "MatMul" for n in model.graph.node) == before - 36  # attention's own products stay float
    assert shared_embedder.int8_matmuls == 36


@pytest.mark.slow  # embeds a corpus on both paths (35 s loaded); .ci/run runs it
def test_int8_vectors_match_the_float_path(shared_embedder, float_embedder):
    one_by_one = np.stack([shared_embedder.embed_one(t) for t in TEXTS])
    batched = shared_embedder.embed(TEXTS)  # padded to the longest text
    reference = float_embedder.embed(TEXTS)
    for vectors in (one_by_one, batched):
        cosines = (vectors * reference).sum(axis=1)
        # Measured: 0.9997-0.9999, and 0.998 for "ok" (three tokens). A wrong weight layout gives ~0.6.
        assert cosines.min() >= 0.998
        assert cosines.mean() >= 0.9995
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # What search compares, the cosine between two texts, moves by little (measured: at most 0.0085, next to "ok").
    assert np.abs(batched @ batched.T - reference @ reference.T).max() < 0.02


def test_the_model_id_says_which_path_made_the_vectors(shared_embedder, float_embedder):
    assert shared_embedder.model_id == float_embedder.model_id + INT8_COMPUTE_SUFFIX
    assert float_embedder.int8_matmuls == 0
    with pytest.raises(InvalidInput, match="int8' or 'float"):
        Embedder(compute="fp16")  # type: ignore[arg-type]


def test_a_cube_made_on_the_float_path_is_re_embedded_on_the_int8_path(tmp_path, shared_embedder, float_embedder):
    with_float = MemoryHome(tmp_path, embedder=float_embedder)
    ids = [o.id for o in with_float.cube("switch", create=True).add([{"text": t} for t in TEXTS[:4]])]
    assert with_float.cube("switch").stats().embedding_model == float_embedder.model_id
    with_float.close()

    with_int8 = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        cube = with_int8.cube("switch")
        cube.ensure_vectors()
        assert cube.stats().embedding_model == shared_embedder.model_id
        assert cube.store.stale_embeddings(shared_embedder.model_id, 100) == []
        hits = cube.search(SearchQuery(query="flight to Lisbon", limit=1, signals=["vector"])).hits
        assert [h.id for h in hits] == [ids[0]]
    finally:
        with_int8.close()


def test_the_compute_setting_comes_from_config_or_environment(tmp_path, monkeypatch):
    assert load_config(tmp_path).embedding.compute == "auto"
    (tmp_path / "config.toml").write_text('[embedding]\ncompute = "float"\n', encoding="utf-8")
    assert load_config(tmp_path).embedding.compute == "float"
    monkeypatch.setenv("MEMCUBE_EMBEDDING_COMPUTE", "int8")
    assert load_config(tmp_path).embedding.compute == "int8"
    monkeypatch.setenv("MEMCUBE_EMBEDDING_COMPUTE", "bfloat16")
    with pytest.raises(InvalidInput, match="MEMCUBE_EMBEDDING_COMPUTE"):
        load_config(tmp_path)


BATCH_TEXTS = [
    f"{name} planned the {thing} for {day}"
    for name in ("Ana", "Bo", "Cy", "Di")
    for thing in ("trip", "dinner", "garden", "move")
    for day in ("Monday", "June", "spring")
]


def test_auto_times_both_paths_once_and_keeps_the_model_id(tmp_path):
    from memory.retrieval import embedder as embedder_module

    auto = Embedder()  # compute="auto" is the default
    assert auto.model_id.endswith(INT8_COMPUTE_SUFFIX)
    model_id = auto.model_id
    auto.embed(BATCH_TEXTS[: embedder_module.CALIBRATION_TEXTS - 1])
    assert not auto.kernel.decided  # small batches (and queries) never pay for the probe
    vectors = auto.embed(BATCH_TEXTS)
    assert auto.kernel.decided
    assert len(auto.kernel.timings_ms["int8"]) == len(auto.kernel.timings_ms["float"]) == embedder_module.CALIBRATION_ROUNDS
    assert auto.kernel.chosen in ("int8", "float")
    assert auto.model_id == model_id  # whichever path won, the stored model id stays
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    auto.embed(BATCH_TEXTS)
    assert sum(len(t) for t in auto.kernel.timings_ms.values()) == 2 * embedder_module.CALIBRATION_ROUNDS  # decided once


def test_when_the_float_path_wins_its_vectors_serve_the_same_cube(tmp_path, monkeypatch, shared_embedder, float_embedder):
    from memory.retrieval import embedder as embedder_module

    monkeypatch.setattr(embedder_module, "FLOAT_MARGIN", 1e9)  # the float path "wins" whatever the timings
    auto = Embedder()
    vectors = auto.embed(BATCH_TEXTS)
    assert auto.kernel.chosen == "float"
    assert np.abs(vectors - float_embedder.embed(BATCH_TEXTS)).max() < 1e-5  # computed by the float path
    assert (vectors * shared_embedder.embed(BATCH_TEXTS)).sum(axis=1).min() >= 0.998
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        cube = home.cube("mixed", create=True)
        ids = [o.id for o in cube.add([{"text": t} for t in BATCH_TEXTS[:5]])]
    finally:
        home.close()
    home = MemoryHome(tmp_path, embedder=auto)
    try:
        cube = home.cube("mixed")
        cube.ensure_vectors()
        assert cube.store.stale_embeddings(auto.model_id, 100) == []  # nothing re-embedded for the choice
        hits = cube.search(SearchQuery(query=BATCH_TEXTS[2], limit=1, signals=["vector"])).hits
        assert [h.id for h in hits] == [ids[2]]
    finally:
        home.close()


def test_an_explicit_path_is_never_second_guessed():
    pinned = Embedder(compute="int8")
    pinned.embed(BATCH_TEXTS)
    assert pinned.kernel.chosen == "int8"
    assert pinned.kernel.timings_ms == {"int8": [], "float": []}


@pytest.mark.slow  # embeds a corpus in many batchings (100 s on a loaded 2-core machine); .ci/run runs it
def test_a_texts_vector_does_not_depend_on_the_batch_it_came_in(shared_embedder, float_embedder):
    """A batch is tokenised once, sorted by token count and cut into runs padded to their longest:
    neither the grouping nor the padding may reach a text's vector (on either path)."""
    batch = [*TEXTS, *BATCH_TEXTS, *(f"note {i}: {'word ' * (i % 23)}end" for i in range(40))]
    for embedder in (shared_embedder, float_embedder):
        together = embedder.embed(batch)
        alone = np.stack([embedder.embed_one(text) for text in batch])
        assert np.abs(together - alone).max() < 1e-5
        reversed_batch = embedder.embed(batch[::-1])[::-1]
        assert np.abs(together - reversed_batch).max() < 1e-5
