"""The local model behind activation memory: loaded on first use, run on one thread of its own.

All model work (load, prefill, generation, cache files) runs on a single "model thread":
MLX streams are per thread, and two prefills at once on a laptop's cores would only slow
each other. Callers block in a worker thread while it runs, never on the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from memory.activation.base import Backend, CacheMeta, ModelIdentity, NoLocalModel
from memory.activation.citations import attribute, checked_citations
from memory.activation.kv_store import Entry, KVStore
from memory.activation.prompt import PromptTemplate
from memory.activation.stopping import END_OF_TURN, AnswerStop, Stopped, asks_for_one_thing
from memory.config import LocalModelConfig
from memory.models import Memory

T = TypeVar("T")
HOW_TO_CONFIGURE = (
    "set [local_model] path in <home>/config.toml, or the MEMCUBE_LOCAL_MODEL environment variable, to a .gguf file "
    "(llama.cpp, or a name `memcube model list` shows for Ollama and LM Studio models), to a model folder "
    "(MLX: config.json + *.safetensors + tokenizer; ONNX: model.onnx with past_key_values inputs + config.json + "
    "tokenizer.json), or to a hub id fetched first with `memcube model pull <id>` "
    "(e.g. mlx-community/Qwen2.5-0.5B-Instruct-4bit on Apple Silicon, onnx-community/Qwen2.5-0.5B-Instruct elsewhere)"
)


def pulled_folder(home: Path, hub_id: str) -> Path:
    return home / "models" / hub_id.replace("/", "--")


def resolve_model(config: LocalModelConfig, home: Path) -> tuple[Path, str, str]:
    """(folder, name, backend) for the configured model; never downloads."""
    if not config.path:
        raise NoLocalModel(f"no local model is configured: {HOW_TO_CONFIGURE}")
    from memory.activation.model_files import find_gguf, looks_like_path

    local = Path(config.path).expanduser()
    backend: str = config.backend
    if (gguf_file := find_gguf(config.path)) is not None:
        from memory.activation.gguf import gguf_backend, import_gguf

        backend = gguf_backend(backend)
        return import_gguf(gguf_file, home, backend), gguf_file.stem if gguf_file.suffix else config.path, backend
    if local.is_dir():
        folder, name = local, local.name
    elif (pulled := pulled_folder(home, config.path)).is_dir():
        folder, name = pulled, config.path
    elif looks_like_path(config.path):
        raise NoLocalModel(f"local model path {local} does not exist: {HOW_TO_CONFIGURE}")
    else:
        raise NoLocalModel(
            f"local model '{config.path}' is neither a folder nor pulled yet: run `memcube model pull {config.path}`, or {HOW_TO_CONFIGURE}"
        )
    if backend == "auto":
        from memory.activation.onnx_backend import find_onnx

        backend = "onnx" if find_onnx(folder) is not None else "mlx"
    return folder, name, backend


def load_backend(folder: Path, name: str, backend: str) -> Backend:
    if backend == "mlx":
        from memory.activation.mlx_backend import MLXBackend

        return MLXBackend(folder, name)
    from memory.activation.onnx_backend import ONNXBackend

    return ONNXBackend(folder, name)


class WarmOutcome(BaseModel):
    memories: int
    tokens: int = Field(description="tokens in the cache")
    prefilled: int = Field(description="tokens computed now (the rest came from a stored prefix)")


class AskOutcome(BaseModel):
    answer: str
    context_ids: list[str] = Field(description="the memories the model read, in prompt order")
    cited_ids: list[str] = Field(
        default_factory=list,
        description="the memories the answer uses (it cites them, checked, or its content comes from them), in prompt order",
    )
    mentioned_ids: list[str] = Field(description="the memory ids the answer writes that the prompt held (checked)")
    stopped: Stopped = Field(
        "end", description="why the answer ended: end of turn, a new prompt header, a repetition, or max_tokens"
    )
    reused_tokens: int = Field(description="prompt tokens taken from a warm cache instead of computed")
    prefilled_tokens: int = Field(description="prompt tokens computed for this answer (missing memories and the question)")
    ttft_ms: float = Field(description="time to the first answer token")
    model: ModelIdentity


class ActivationEngine:
    def __init__(self, config: LocalModelConfig, home: Path) -> None:
        self.config = config
        self.home = home
        self._backend: Backend | None = None
        self._template: PromptTemplate | None = None
        self._stop_ids: set[int] = set()
        self._stores: dict[Path, KVStore] = {}
        self._lock = threading.RLock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memcube-model")

    @property
    def configured(self) -> bool:
        return bool(self.config.path)

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the model thread and wait for it."""
        return self._thread.submit(fn).result()

    def backend(self) -> Backend:
        with self._lock:
            if self._backend is None:
                folder, name, kind = resolve_model(self.config, self.home)
                backend = self.run(lambda: load_backend(folder, name, kind))
                self._template = PromptTemplate(backend)
                self._stop_ids = set(backend.eos_ids) | end_of_turn_ids(backend)
                self._backend = backend
            return self._backend

    @property
    def template(self) -> PromptTemplate:
        self.backend()
        assert self._template is not None
        return self._template

    def store(self, cube_folder: Path) -> KVStore:
        backend = self.backend()
        with self._lock:
            store = self._stores.get(cube_folder)
            if store is None:
                store = KVStore(
                    cube_folder / "kv" / backend.identity.key(),
                    backend,
                    self.template.version,
                    ram_budget=self.config.ram_budget_mb << 20,
                    disk_budget=self.config.disk_budget_mb << 20,
                    run=self.run,
                )
                self._stores[cube_folder] = store
            return store

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    # -- building caches --------------------------------------------------------------

    def warm(self, cube_folder: Path, memories: list[Memory]) -> WarmOutcome:
        """Make sure a cache of ``memories`` (in this order) exists, reusing the longest stored leading run.

        The working set changes a little between predictions; a copy of the old cache cut back
        to the memories both share is extended with the rest, so only those are prefilled.
        """
        store, template, backend = self.store(cube_folder), self.template, self.backend()
        wanted = [(m.id, m.version) for m in memories]
        base, shared = store.longest_prefix(wanted)
        if base is not None and shared == len(wanted) == len(base.meta.memories):  # the whole set is warm already
            store.cache_of(base)
            return WarmOutcome(memories=len(wanted), tokens=base.meta.tokens, prefilled=0)
        head = template.head_tokens()
        kept = base.meta.ends[shared - 1] if base is not None and shared else 0
        tokens = [] if kept else list(head)
        ends = list(base.meta.ends[:shared]) if base is not None and kept else []
        length = kept or len(head)
        first = shared if kept else 0
        for number, memory in enumerate(memories[first:], start=first + 1):
            piece = template.memory_tokens(memory, number)
            tokens += piece
            length += len(piece)
            ends.append(length)
        start = store.cache_of(base) if base is not None and kept else None

        def build() -> Any:
            cache = backend.copy_cache(start, kept) if start is not None else backend.new_cache()
            return backend.prefill(cache, tokens)[1]

        cache = self.run(build)
        meta = CacheMeta(identity=backend.identity, template=template.version, memories=wanted, ends=ends, tokens=length)
        store.put(meta, cache)
        return WarmOutcome(memories=len(wanted), tokens=length, prefilled=len(tokens))

    def sweep(self, cube_folder: Path, current: dict[str, int]) -> int:
        """Drop caches that read a memory which has since changed (``current``: live id -> version)."""
        return self.store(cube_folder).validate(current) if self.loaded else 0

    def drop(self, cube_folder: Path, ids: list[str]) -> int:
        return self.store(cube_folder).drop_memories(ids) if self.loaded else 0

    # -- answering --------------------------------------------------------------------

    def ask(
        self,
        cube_folder: Path,
        hits: list[Memory],
        question: str,
        *,
        max_tokens: int | None = None,
        lookup: Callable[[list[str]], list[Memory]] | None = None,
    ) -> AskOutcome:
        """Answer ``question`` from ``hits``, starting from the stored cache that holds most of them.

        The answer ends at the end of the model's turn, at a new prompt header or where it starts
        repeating itself (else at ``max_tokens``). ``lookup`` reads the memories a warm cache holds
        beyond ``hits`` (the prompt holds them too), so that the answer can be attributed to them.
        """
        store, template, backend = self.store(cube_folder), self.template, self.backend()
        entry: Entry | None = store.best_for(m.id for m in hits)
        base_ids = entry.meta.ids if entry else []
        missing = [m for m in hits if m.id not in set(base_ids)]
        tokens = [] if entry else template.head_tokens()
        for number, memory in enumerate(missing, start=len(base_ids) + 1):
            tokens += template.memory_tokens(memory, number)
        question_tokens = template.question_tokens(question)
        start = store.cache_of(entry) if entry else None
        limit = max_tokens or self.config.max_tokens

        stop_ids = self._stop_ids

        def answer() -> tuple[str, Stopped, float]:
            began = time.perf_counter()
            # Always a copy: the stored cache must leave this call byte for byte as it came.
            cache = backend.copy_cache(start) if start is not None else backend.new_cache()
            if tokens:
                cache = backend.prefill(cache, tokens)[1]
            out: list[int] = []
            first = 0.0
            guard = AnswerStop(one_sentence=asks_for_one_thing(question))
            text: str = ""
            why: Stopped = "budget"
            for token in backend.generate(cache, question_tokens, limit, self.config.temperature):
                if not out:
                    first = time.perf_counter() - began
                if token in stop_ids:
                    why = "end"
                    break
                out.append(token)
                text = backend.decode(out)
                verdict = guard.check(text)
                if verdict.stop:
                    text, why = text[: verdict.keep], verdict.reason
                    break
            else:
                if len(out) < limit:
                    why = "end"  # the backend stopped at one of its own end tokens
            return text, why, (first or time.perf_counter() - began)

        raw, why, ttft = self.run(answer)
        context = base_ids + [m.id for m in missing]
        text, mentioned = checked_citations(raw.strip(), context)
        by_id = {m.id: m for m in hits}
        others = [i for i in context if i not in by_id]
        if others and lookup is not None:
            by_id |= {m.id: m for m in lookup(others)}
        # Preferred on a tie: the retrieved hits in their rank order, then what the warm cache held.
        readable = [m for m in hits if m.id in set(context)] + [by_id[i] for i in others if i in by_id]
        used = set(mentioned) | set(attribute(text, question, readable))
        return AskOutcome(
            answer=text,
            context_ids=context,
            cited_ids=[i for i in context if i in used],
            mentioned_ids=mentioned,
            stopped=why,
            reused_tokens=entry.meta.tokens if entry else 0,
            prefilled_tokens=len(tokens) + len(question_tokens),
            ttft_ms=round(ttft * 1000, 2),
            model=backend.identity,
        )


def end_of_turn_ids(backend: Backend) -> set[int]:
    """The ids of the end-of-turn special tokens the vocabulary has (one token each, decoded to nothing)."""
    ids: set[int] = set()
    for marker in END_OF_TURN:
        encoded = backend.encode(marker)
        if len(encoded) == 1 and not backend.decode(encoded).strip():
            ids.add(encoded[0])
    return ids
