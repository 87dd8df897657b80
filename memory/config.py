"""Where data lives and how a home is configured.

``MEMCUBE_HOME`` (or ``--home``) names the data directory; the default is the
platform's user data folder (``~/.local/share/memcube`` on Linux,
``~/Library/Application Support/memcube`` on macOS, ``%LOCALAPPDATA%\\memcube`` on
Windows). ``<home>/config.toml`` is optional:

    [embedding]
    model_dir = "/path/to/onnx-sentence-model"   # model.onnx + tokenizer.json

``MEMCUBE_EMBEDDING_MODEL`` overrides ``model_dir``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from .constants import DEFAULT_CUBE
from .errors import InvalidInput

__all__ = ["DEFAULT_CUBE", "HomeConfig", "check_cube_name", "default_home", "load_config"]
CUBE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class EmbeddingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_dir: str | None = None


class HomeConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    embedding: EmbeddingConfig = EmbeddingConfig()


def default_home() -> Path:
    configured = os.environ.get("MEMCUBE_HOME")
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
    override = os.environ.get("MEMCUBE_EMBEDDING_MODEL")
    if override:
        config.embedding.model_dir = override
    return config


def check_cube_name(name: object) -> str:
    if not isinstance(name, str) or not CUBE_NAME_PATTERN.match(name):
        shown = repr(name)[:80]
        raise InvalidInput(
            f"cube name {shown} is not allowed: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return name
