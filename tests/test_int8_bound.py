"""The int8 first pass stays within its bound on the CPU it runs on, for adversarial vectors.

ONNX Runtime's integer product differs by instruction set: with VNNI (x86) or the dot
product instructions (ARM64) each uint8 x int8 product is added in 32 bits; with AVX2
alone it goes through ``vpmaddubsw``, which adds a pair of products into 16 bits and
saturates. These tests run the real kernel on whatever CPU runs them, with the vectors
most likely to push a pair past 32,767 (every code at its largest, signs agreeing with the
query's, the query's values all at the top of its uint8 range), and random families of
skewed vectors (hypothesis). A score out of its bound would let the first pass drop a true
top-k memory, so each test checks the bound and the exact top k.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory.store.int8_scan import CODE_MAX, UINT8_LEVELS, Int8Scan
from memory.store.vector_mirror import Cosines

DIM = 384


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = rows.astype(np.float32)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return np.where(norms > 0, rows / np.where(norms > 0, norms, 1), 0).astype(np.float32)


def _assert_within_bounds(rows: np.ndarray, queries: np.ndarray) -> None:
    scan = Int8Scan(rows)
    for query in queries:
        exact = rows.astype(np.float64) @ query.astype(np.float64)
        error = np.abs(scan.scores(query).astype(np.float64) - exact)
        bounds = scan.bounds(query)
        worst = int(np.argmax(error - bounds))
        assert error[worst] <= bounds[worst], f"row {worst}: off by {error[worst]:.4f}, bound {bounds[worst]:.4f}"
        assert error.max() <= scan.bound(query)


def _top_through_first_pass(rows: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scan = Int8Scan(rows)
    ids = np.arange(len(rows), dtype=np.int64)
    cosines = Cosines(ids, scan.scores(query), ids, rows, query, {i: i for i in range(len(rows))}, errors=scan.bounds(query))
    return [row for row, _ in cosines.top(k)]


def _exact_top(rows: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    exact = rows @ query
    return [int(i) for i in np.argsort(-exact, kind="stable")[:k]]


def test_no_pair_of_products_can_saturate_sixteen_bits():
    # The widest a uint8 query value times a code can be, twice (one vpmaddubsw pair).
    assert 2 * UINT8_LEVELS * CODE_MAX <= 2**15 - 1


def test_rows_and_queries_that_fill_every_pair_stay_within_the_bound():
    """Every code at its largest and every query value at 255: the pairs a saturating kernel gets wrong."""
    flat = np.full(DIM, 1.0, dtype=np.float32)
    signs = np.where(np.arange(DIM) % 3 == 0, -1.0, 1.0).astype(np.float32)
    rows = _unit(
        np.stack(
            [
                flat,  # all codes +CODE_MAX against an all-positive query
                -flat,
                flat * signs,
                np.where(np.arange(DIM) < DIM // 2, 1.0, 0.9),  # nearly flat: codes at or next to the top
                np.where(np.arange(DIM) % 2 == 0, 1.0, 0.0),  # pairs of one full and one empty product
            ]
        )
    )
    queries = _unit(np.stack([flat, flat * signs, -flat, np.where(np.arange(DIM) % 2 == 0, 1.0, 0.5)]))
    _assert_within_bounds(rows, queries)


def test_the_first_pass_keeps_the_exact_top_k_where_saturation_would_reorder_it():
    """Flat rows aligned with a flat query: on a saturating kernel their scores collapse below near matches."""
    rng = np.random.default_rng(5)
    near = np.ones((400, DIM)) + 0.75 * rng.standard_normal((400, DIM))  # cosine about 0.8, codes mostly small
    aligned = np.ones((20, DIM)) + 0.05 * rng.standard_normal((20, DIM))  # the true best matches, every code large
    rows = _unit(np.concatenate([near, aligned]))
    query = _unit(np.ones(DIM) + 0.01 * rng.standard_normal(DIM))
    for k in (1, 5, 20, 30):
        assert _top_through_first_pass(rows, query, k) == _exact_top(rows, query, k)


@st.composite
def _skewed_rows_and_query(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Rows and a query from a family that leans toward large, sign-aligned products."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    count = draw(st.integers(2, 120))
    flatness = draw(st.floats(0.0, 1.0))  # 1: every component the same size (every code at its top)
    spikes = draw(st.integers(0, 8))  # a few dimensions far larger than the rest, as real embeddings have
    spike_size = draw(st.floats(1.0, 40.0))
    alignment = draw(st.floats(0.0, 1.0))  # share of rows whose signs follow the query's
    query_skew = draw(st.sampled_from(["flat", "positive", "spiky", "normal"]))
    base_query = rng.standard_normal(DIM)
    if query_skew == "flat":
        base_query = np.sign(base_query)
    elif query_skew == "positive":
        base_query = np.abs(base_query) + 1.0
    elif query_skew == "spiky":
        base_query[rng.integers(0, DIM, 3)] *= spike_size
    magnitudes = (1 - flatness) * np.abs(rng.standard_normal((count, DIM))) + flatness
    signs = np.where(rng.random((count, 1)) < alignment, np.sign(base_query)[None, :], np.sign(rng.standard_normal((count, DIM))))
    rows = magnitudes * signs
    if spikes:
        rows[:, rng.integers(0, DIM, spikes)] *= spike_size
    if draw(st.booleans()):
        rows[0] = 0.0  # an all-zero row, as an imported vector can be
    return _unit(rows), _unit(base_query)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_skewed_rows_and_query())
def test_adversarial_families_stay_within_the_bound_and_keep_the_exact_top_k(case):
    rows, query = case
    _assert_within_bounds(rows, query[None, :])
    for k in (1, 10):
        got = _top_through_first_pass(rows, query, k)
        want = _exact_top(rows, query, k)
        exact = rows @ query
        # Ties in the exact cosines may order either way, and float32 products of the same rows
        # taken in another order differ in the last bits: the cosines of the two lists must agree.
        assert exact[got] == pytest.approx(exact[want], abs=1e-5)
