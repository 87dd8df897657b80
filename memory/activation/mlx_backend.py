"""The MLX backend (mlx-lm): Metal on Apple Silicon, the CPU build elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from memory.activation.base import CacheRefused, ModelIdentity, model_revision

WEIGHTS = ("*.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json")
PREFILL_STEP = 512  # tokens per forward pass while prefilling: bounds peak memory on long contexts


class MLXBackend:
    def __init__(self, folder: Path, name: str) -> None:
        import mlx.core as mx
        from mlx_lm import load

        # A local folder always: mlx_lm.load fetches from the hub when given a path that does not exist.
        if not folder.is_dir():
            raise FileNotFoundError(folder)
        self._mx = mx
        loaded: Any = load(str(folder))  # (model, tokenizer); typed as a 3-tuple for return_config
        self.model, self.tokenizer = loaded[0], loaded[1]
        dtype = str(self.model.parameters()["model"]["embed_tokens"]["weight"].dtype).removeprefix("mlx.core.")
        self.identity = ModelIdentity(backend="mlx", name=name, revision=model_revision(folder, WEIGHTS), dtype=dtype)
        self.eos_ids = set(self.tokenizer.eos_token_ids)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def chat_template(self) -> str | None:
        if not getattr(self.tokenizer, "has_chat_template", False):
            return None
        return self.tokenizer.apply_chat_template(
            [{"role": "system", "content": "\x00CONTEXT\x00"}, {"role": "user", "content": "\x00QUESTION\x00"}],
            tokenize=False,
            add_generation_prompt=True,
        )

    def new_cache(self) -> list[Any]:
        from mlx_lm.models.cache import KVCache, RotatingKVCache, make_prompt_cache

        # Gemma 3's sliding-window layers get a rotating cache that forgets tokens outside the window;
        # copies, shared prefixes and saved files need every token in order, so each layer keeps a
        # whole cache and the model's windowed mask keeps those layers' attention local.
        return [KVCache() if isinstance(c, RotatingKVCache) else c for c in make_prompt_cache(self.model)]

    def copy_cache(self, cache: list[Any], tokens: int | None = None) -> list[Any]:
        # KVCache.update_and_fetch writes into its preallocated buffers in place, so sharing them with
        # the stored cache would let a generation change it. A copy gets exactly-sized buffers of its own.
        copies = []
        for layer in cache:
            twin = type(layer)()
            if layer.keys is not None:
                n = layer.offset if tokens is None else min(tokens, layer.offset)
                twin.state = (self._mx.array(layer.keys[..., :n, :]), self._mx.array(layer.values[..., :n, :]), n)
            copies.append(twin)
        self._mx.eval([c.state for c in copies if c.keys is not None])
        return copies

    def cache_tokens(self, cache: list[Any]) -> int:
        return int(cache[0].offset) if cache else 0

    def cache_bytes(self, cache: list[Any]) -> int:
        return sum(int(c.nbytes) for c in cache)

    def prefill(self, cache: list[Any], tokens: list[int]) -> tuple[np.ndarray, list[Any]]:
        mx = self._mx
        if not tokens:
            raise ValueError("nothing to prefill")
        ids = mx.array(tokens)
        for start in range(0, len(tokens) - 1, PREFILL_STEP):
            chunk = ids[start : min(start + PREFILL_STEP, len(tokens) - 1)]
            self.model(chunk[None], cache=cache)  # logits left unevaluated: lazy MLX skips the LM head
            mx.eval([c.state for c in cache])
        logits = self.model(ids[-1:][None], cache=cache)[0, -1].astype(mx.float32)
        mx.eval(logits)
        return np.array(logits), cache

    def generate(self, cache: list[Any], tokens: list[int], max_tokens: int, temperature: float) -> Iterator[int]:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        sampler = make_sampler(temp=temperature)
        for response in stream_generate(
            self.model, self.tokenizer, tokens, max_tokens=max_tokens, prompt_cache=cache, sampler=sampler
        ):
            if response.finish_reason is not None and response.text == "":
                return
            yield int(response.token)

    def save_cache(self, cache: list[Any], path: Path, header: dict[str, str]) -> None:
        from mlx_lm.models.cache import save_prompt_cache

        # Trimmed to its length first, so the file holds no stale buffer tail.
        save_prompt_cache(str(path), self.copy_cache(cache), header)

    def load_cache(self, path: Path) -> list[Any]:
        from mlx_lm.models.cache import load_prompt_cache

        try:
            return load_prompt_cache(str(path))
        except Exception as exc:  # a damaged or foreign file must not take the answer down
            raise CacheRefused(f"cannot read cache {path.name}: {exc}") from None
