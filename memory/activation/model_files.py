"""GGUF models already on this computer: plain files, Ollama's blobs, LM Studio's models folder.

Ollama keeps each model as a content-addressed blob (``~/.ollama/models/blobs/sha256-<hex>``,
or under ``$OLLAMA_MODELS``) named by a manifest (``manifests/<registry>/<namespace>/<model>/<tag>``)
whose layer of media type ``application/vnd.ollama.image.model`` is the GGUF. LM Studio keeps
plain ``.gguf`` files under ``~/.lmstudio/models`` (older versions: ``~/.cache/lm-studio/models``).
Each model found gets a name a person can put in ``[local_model] path``:
``ollama:qwen2.5:0.5b`` or ``lmstudio:<publisher>/<repo>/<file>.gguf``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel

from memory.activation.base import NoLocalModel

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_DEFAULT_REGISTRY = ("registry.ollama.ai", "library")


class ModelFile(BaseModel):
    name: str  # what [local_model] path accepts
    source: str  # ollama, lmstudio or file
    path: Path
    size: int


def ollama_root() -> Path:
    configured = os.environ.get("OLLAMA_MODELS", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".ollama" / "models"


def lmstudio_roots() -> list[Path]:
    return [Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"]


def ollama_models(root: Path | None = None) -> list[ModelFile]:
    root = root or ollama_root()
    manifests = root / "manifests"
    found: list[ModelFile] = []
    if not manifests.is_dir():
        return found
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = manifest.relative_to(manifests).parts
        if len(parts) < 4:
            continue
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers") or []
        except (OSError, ValueError, AttributeError):
            continue  # a manifest being written, or not Ollama's: not a model to offer
        digest = next(
            (layer.get("digest") for layer in layers if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_LAYER),
            None,
        )
        if not isinstance(digest, str):
            continue
        blob = root / "blobs" / digest.replace(":", "-")
        if not blob.is_file():
            continue
        *place, model, tag = parts
        prefix = (
            ""
            if tuple(place) == OLLAMA_DEFAULT_REGISTRY
            else "/".join(place[1:] if place[0] == OLLAMA_DEFAULT_REGISTRY[0] else place) + "/"
        )
        found.append(ModelFile(name=f"ollama:{prefix}{model}:{tag}", source="ollama", path=blob, size=blob.stat().st_size))
    return found


def lmstudio_models(roots: list[Path] | None = None) -> list[ModelFile]:
    found: list[ModelFile] = []
    for root in roots or lmstudio_roots():
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.gguf")):
            if path.name.startswith("mmproj") or not path.is_file():
                continue  # a vision projector, not a language model
            relative = path.relative_to(root).as_posix()
            found.append(ModelFile(name=f"lmstudio:{relative}", source="lmstudio", path=path, size=path.stat().st_size))
    return found


def local_model_files() -> list[ModelFile]:
    """Every GGUF model Ollama and LM Studio keep in their standard folders."""
    return ollama_models() + lmstudio_models()


def find_gguf(spec: str) -> Path | None:
    """The GGUF file ``spec`` names (a file path, ``ollama:<model>:<tag>`` or ``lmstudio:<path>``), or None
    when ``spec`` names no file (a folder or a hub id).

    Raises:
        NoLocalModel: ``spec`` is clearly meant as a file or a listed model, and there is none.
    """
    if spec.startswith(("ollama:", "lmstudio:")):
        found = ollama_models() if spec.startswith("ollama:") else lmstudio_models()
        wanted = spec if spec.startswith("lmstudio:") or spec.count(":") > 1 else f"{spec}:latest"
        for model in found:
            if model.name == wanted:
                return model.path
        names = ", ".join(m.name for m in found[:10]) or "none found"
        raise NoLocalModel(f"no local model named {spec!r} (found: {names}; `memcube model list` shows them all)")
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if spec.lower().endswith(".gguf"):
        raise NoLocalModel(
            f"no such file: {path} (give the path of a .gguf file; `memcube model list` shows the ones Ollama and LM Studio keep)"
        )
    return None


def looks_like_path(spec: str) -> bool:
    """True for a spec a person wrote as a path (not a hub id like ``owner/name``)."""
    return (
        spec.startswith(("/", "~", "./", "../", ".\\"))
        or (len(spec) > 2 and spec[1] == ":" and spec[2] in "\\/")
        or spec.lower().endswith(".gguf")
    )
