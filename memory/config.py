"""Where data lives and how a home is configured.

``MEMCUBE_HOME`` (or ``--home``) names the data directory; the default is the
platform's user data folder (``~/.local/share/memcube`` on Linux,
``~/Library/Application Support/memcube`` on macOS, ``%LOCALAPPDATA%\\memcube`` on
Windows). ``<home>/config.toml`` is optional:

    [embedding]
    model_dir = "/path/to/onnx-sentence-model"   # model.onnx + tokenizer.json
    compute = "auto"                             # auto (default), int8 or float: see memory.retrieval.embedder

    [types]
    custom = ["recipe", "decision"]              # memory types beyond note, fact, event, preference, goal, task

    [local_model]                                # the model memory_ask answers with (optional)
    path = "mlx-community/Qwen2.5-0.5B-Instruct-4bit"  # a folder, or a hub id fetched by `memcube model pull`
    backend = "auto"                             # auto, mlx or onnx

``MEMCUBE_EMBEDDING_MODEL`` overrides ``model_dir``, ``MEMCUBE_EMBEDDING_COMPUTE``
overrides ``compute``; ``MEMCUBE_LOCAL_MODEL`` overrides ``local_model.path``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from memory.access_rules import AccessConfig
from memory.defaults import DEFAULT_CUBE
from memory.errors import InvalidInput

__all__ = ["DEFAULT_CUBE", "HomeConfig", "check_cube_name", "default_home", "load_config"]
# \Z, not $: "$" also matches before a final newline, and "home\n" is not a cube name (issue 13).
CUBE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")


class EmbeddingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_dir: str | None = None
    # "int8": a weight-only int8 model's products run in integer arithmetic (vectors very
    # close to the float path's). "float": the exact float path, to match vectors made
    # elsewhere, or on a CPU without int8 dot-product instructions. "auto": the integer
    # path's vectors, computed by whichever path the first large batch measures faster.
    compute: Literal["auto", "int8", "float"] = "auto"


class LocalModelConfig(BaseModel):
    """The local language model that holds activation (KV) memory and answers memory_ask."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = None  # a model folder, or a hub id already fetched with `memcube model pull`
    backend: Literal["auto", "mlx", "onnx"] = "auto"
    max_tokens: int = Field(default=256, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    # What the scheduler keeps warm: the working set's size in model tokens, and the caches' budgets.
    working_set_tokens: int = Field(default=2048, ge=64, le=32768)
    ram_budget_mb: int = Field(default=1024, ge=1)
    disk_budget_mb: int = Field(default=4096, ge=1)


class TypesConfig(BaseModel):
    """Memory types beyond the built-in ones (note, fact, event, preference, goal, task)."""

    model_config = ConfigDict(extra="forbid")
    custom: list[str] = Field(default_factory=list)


class StoreConfig(BaseModel):
    """Where cubes live: the data folder (no ``url``), or a PostgreSQL store several servers share.

    The URL is libpq's (``postgresql://user@host:5432/db?sslmode=verify-full``); its password
    comes from ``PGPASSWORD`` or ``~/.pgpass``, not from here (memory.store.postgres.connect).
    ``MEMCUBE_STORE`` overrides it.
    """

    model_config = ConfigDict(extra="forbid")
    url: str | None = None


class HomeConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    store: StoreConfig = StoreConfig()
    types: TypesConfig = TypesConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    access: AccessConfig = AccessConfig()
    local_model: LocalModelConfig = LocalModelConfig()


def setting(name: str) -> str | None:
    """An environment setting, or None when it is empty or an unexpanded ``${...}`` placeholder.

    An MCP Bundle passes an optional setting the user left empty through as the literal
    text ``${user_config.<key>}``: that means "not set", not a path.
    """
    value = os.environ.get(name, "").strip()
    if not value or (value.startswith("${") and value.endswith("}")):
        return None
    return value


def default_home() -> Path:
    configured = setting("MEMCUBE_HOME")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("memcube", appauthor=False))


def load_config(home: Path) -> HomeConfig:
    path = home / "config.toml"
    data: dict = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{path} is not valid TOML: {exc}") from None
    config = HomeConfig.model_validate(data)
    override = setting("MEMCUBE_EMBEDDING_MODEL")
    if override:
        config.embedding.model_dir = override
    compute = setting("MEMCUBE_EMBEDDING_COMPUTE")
    if compute:
        try:
            config.embedding = EmbeddingConfig.model_validate({**config.embedding.model_dump(), "compute": compute})
        except ValueError:
            raise InvalidInput(f"MEMCUBE_EMBEDDING_COMPUTE must be 'auto', 'int8' or 'float', not {compute[:40]!r}") from None
    local = setting("MEMCUBE_LOCAL_MODEL")
    if local:
        config.local_model.path = local
    store = setting("MEMCUBE_STORE")
    if store:
        config.store.url = store
    return config


def check_cube_name(name: object) -> str:
    if not isinstance(name, str) or not CUBE_NAME_PATTERN.fullmatch(name):
        shown = repr(name)[:80]
        raise InvalidInput(
            f"cube name {shown} is not allowed: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return name
