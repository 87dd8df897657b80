"""The ONNX Runtime backend: a decoder exported with a KV cache (Optimum / onnx-community layout)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from memory.activation.base import CacheRefused, ModelIdentity, model_revision

WEIGHTS = ("*.onnx", "*.onnx_data", "onnx/*.onnx", "onnx/*.onnx_data", "config.json", "tokenizer.json")
# A cache is a tuple of (key, value) per layer, each [1, kv_heads, tokens, head_dim]. numpy arrays
# are never written in place here, so sharing one between a stored cache and a generation is safe.
Cache = tuple[tuple[np.ndarray, np.ndarray], ...]
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
PREFILL_STEP = 512  # tokens per run while prefilling: the attention scores grow with chunk x context


def find_onnx(folder: Path) -> Path | None:
    for candidate in (
        folder / "model.onnx",
        folder / "onnx" / "model.onnx",
        folder / "decoder_model_merged.onnx",
        folder / "onnx" / "decoder_model_merged.onnx",
    ):
        if candidate.is_file():
            return candidate
    return None


class ONNXBackend:
    def __init__(self, folder: Path, name: str) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = find_onnx(folder)
        if path is None:
            raise FileNotFoundError(f"no model.onnx in {folder} or {folder / 'onnx'}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "config.json").read_text())
        self.layers = int(config["num_hidden_layers"])
        self.kv_heads = int(config.get("num_key_value_heads") or config["num_attention_heads"])
        self.head_dim = int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.dtype = _DTYPES.get(inputs["past_key_values.0.key"].type, np.float32)
        self.has_position_ids = "position_ids" in inputs
        eos = config.get("eos_token_id")
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self._template = _read_template(folder)
        self._folder = folder
        self.identity = ModelIdentity(
            backend="onnx", name=name, revision=model_revision(folder, WEIGHTS), dtype=np.dtype(self.dtype).name
        )

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def chat_template(self) -> str | None:
        if self._template is None:
            return None
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(self._template)
        messages = [{"role": "system", "content": "\x00CONTEXT\x00"}, {"role": "user", "content": "\x00QUESTION\x00"}]
        # A template that opens with {{ bos_token }} (Llama 3) needs the real one: the prompt is encoded without special tokens added.
        return template.render(
            messages=messages, add_generation_prompt=True, bos_token=_read_token(self._folder, "bos_token"), eos_token=""
        )

    def new_cache(self) -> Cache:
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), self.dtype)
        return tuple((empty, empty) for _ in range(self.layers))

    def copy_cache(self, cache: Cache, tokens: int | None = None) -> Cache:
        if tokens is None:
            return cache  # never written in place: _forward builds new arrays
        return tuple((k[:, :, :tokens], v[:, :, :tokens]) for k, v in cache)

    def cache_tokens(self, cache: Cache) -> int:
        return int(cache[0][0].shape[2])

    def cache_bytes(self, cache: Cache) -> int:
        return sum(k.nbytes + v.nbytes for k, v in cache)

    def _forward(self, cache: Cache, tokens: list[int]) -> tuple[np.ndarray, Cache]:
        past = self.cache_tokens(cache)
        feeds: dict[str, np.ndarray] = {
            "input_ids": np.array([tokens], np.int64),
            "attention_mask": np.ones((1, past + len(tokens)), np.int64),
        }
        if self.has_position_ids:
            feeds["position_ids"] = np.arange(past, past + len(tokens), dtype=np.int64)[None]
        for i, (k, v) in enumerate(cache):
            feeds[f"past_key_values.{i}.key"] = k
            feeds[f"past_key_values.{i}.value"] = v
        outputs = self.session.run(None, feeds)
        names = [o.name for o in self.session.get_outputs()]
        by_name = dict(zip(names, outputs, strict=True))
        present = tuple((by_name[f"present.{i}.key"], by_name[f"present.{i}.value"]) for i in range(self.layers))
        return by_name["logits"][0, -1].astype(np.float32), present

    def prefill(self, cache: Cache, tokens: list[int]) -> tuple[np.ndarray, Cache]:
        if not tokens:
            raise ValueError("nothing to prefill")
        for start in range(0, len(tokens), PREFILL_STEP):
            logits, cache = self._forward(cache, tokens[start : start + PREFILL_STEP])
        return logits, cache

    def generate(self, cache: Cache, tokens: list[int], max_tokens: int, temperature: float) -> Iterator[int]:
        rng = np.random.default_rng()
        logits, cache = self.prefill(cache, tokens)
        for _ in range(max_tokens):
            token = _sample(logits, temperature, rng)
            if token in self.eos_ids:
                return
            yield token
            logits, cache = self._forward(cache, [token])

    def save_cache(self, cache: Cache, path: Path, header: dict[str, str]) -> None:
        from safetensors.numpy import save_file

        tensors = {}
        for i, (k, v) in enumerate(cache):
            tensors[f"layers.{i}.key"] = np.ascontiguousarray(k)
            tensors[f"layers.{i}.value"] = np.ascontiguousarray(v)
        save_file(tensors, str(path), metadata=header)

    def load_cache(self, path: Path) -> Cache:
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(path))
            return tuple((tensors[f"layers.{i}.key"], tensors[f"layers.{i}.value"]) for i in range(self.layers))
        except Exception as exc:
            raise CacheRefused(f"cannot read cache {path.name}: {exc}") from None


def _sample(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    if temperature <= 0:
        return int(np.argmax(logits))
    scaled = (logits - logits.max()) / temperature
    probs = np.exp(scaled)
    return int(rng.choice(len(probs), p=probs / probs.sum()))


def _read_token(folder: Path, key: str) -> str:
    path = folder / "tokenizer_config.json"
    value = json.loads(path.read_text()).get(key) if path.is_file() else None
    if isinstance(value, dict):  # {"content": "<s>", ...} in some tokenizer configs
        value = value.get("content")
    return value if isinstance(value, str) else ""


def _read_template(folder: Path) -> str | None:
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return None
    template = json.loads(path.read_text()).get("chat_template")
    return template if isinstance(template, str) else None
