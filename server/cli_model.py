"""``memcube model import`` and ``memcube model list``: local GGUF files as the model for memory_ask,
and the one-line answers ``memcube model pull`` gives offline or when handed a path."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

USE_A_FILE = "use a local file instead: `memcube model import FILE.gguf`, or MEMCUBE_LOCAL_MODEL=/path/to/model.gguf (`memcube model list` shows the Ollama and LM Studio models here)"


def _home_path(args: argparse.Namespace) -> Path:
    from memory.config import default_home

    return Path(args.home).expanduser() if args.home else default_home()


def cmd_model_import(args: argparse.Namespace) -> int:
    """Convert a GGUF file (or a model `memcube model list` names) once; print how to use it."""
    from memory.activation.gguf import check_gguf, gguf_backend, import_gguf
    from memory.activation.model_files import find_gguf

    home = _home_path(args)
    path = find_gguf(args.file) or Path(args.file).expanduser()
    info = check_gguf(path)  # the clear refusals (not GGUF, truncated, unsupported) before any work
    backend = gguf_backend(args.backend)
    print(f"converting {info.name} ({info.architecture}, {_types(info.tensor_types)}) for {backend} ...", file=sys.stderr)
    folder = import_gguf(path, home, backend, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{path} -> {folder}")
    print(f'use it: MEMCUBE_LOCAL_MODEL="{args.file}" or [local_model] path = "{args.file}" in {home / "config.toml"}')
    return 0


def _types(types: dict[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(types.items(), key=lambda kv: -kv[1]))


def cmd_model_list(args: argparse.Namespace) -> int:
    """The GGUF models Ollama and LM Studio keep here, and the files already converted in this home."""
    import json

    from memory.activation.gguf import gguf_root
    from memory.activation.model_files import local_model_files

    rows: list[tuple[str, str, str]] = [(m.name, _size(m.size), str(m.path)) for m in local_model_files()]
    root = gguf_root(_home_path(args))
    for provenance in sorted(root.glob("*/memcube-gguf.json")) if root.is_dir() else []:
        try:
            source = json.loads(provenance.read_text())
        except ValueError:
            continue
        rows.append((str(source.get("source")), f"converted for {source.get('backend')}", str(provenance.parent)))
    if not rows:
        print(
            "no GGUF models found in ~/.ollama/models, ~/.lmstudio/models or ~/.cache/lm-studio/models; "
            "any .gguf file works: memcube model import FILE.gguf"
        )
        return 0
    width = max(len(r[0]) for r in rows)
    for name, size, where in rows:
        print(f"{name:<{width}}  {size:>10}  {where}")
    return 0


def _size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.0f} MB"


def pull_refusal(model: str) -> str | None:
    """Why ``memcube model pull`` should not contact the hub for ``model``: it is written as a path."""
    from memory.activation.model_files import looks_like_path

    path = Path(model).expanduser()
    if path.exists():
        return f"{model} is a local path, not a hub id: nothing to pull. Use it directly: MEMCUBE_LOCAL_MODEL={model}" + (
            f" (or convert it once now: memcube model import {model})" if path.is_file() else ""
        )
    if looks_like_path(model):
        return f"no such file or folder: {path} (a hub id looks like owner/name; a local model is a .gguf file or a folder)"
    return None


def offline_message(model: str, exc: BaseException) -> str:
    """One line for a failed pull: the hub cannot be reached, or it answered with an error."""
    if _is_network_error(exc):
        return f"cannot reach the Hugging Face hub to pull {model} ({type(exc).__name__}); {USE_A_FILE}"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return f"cannot pull {model}: {first}"


def _is_network_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current).__name__
        if isinstance(current, (ConnectionError, TimeoutError)) or any(
            word in kind for word in ("Connect", "Timeout", "Offline", "LocalEntryNotFound", "NameResolution", "Network")
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def register(model_commands: Any, with_home: Any) -> None:
    imp = with_home(
        model_commands.add_parser("import", help="convert a GGUF file (llama.cpp, Ollama, LM Studio) once for memory_ask")
    )
    imp.add_argument("file", help="a .gguf file, or a name `memcube model list` shows (ollama:qwen2.5:0.5b, lmstudio:...)")
    imp.add_argument(
        "--backend", choices=["auto", "mlx", "onnx"], default="auto", help="auto: MLX on Apple Silicon, ONNX Runtime elsewhere"
    )
    imp.set_defaults(func=cmd_model_import)
    listing = with_home(model_commands.add_parser("list", help="GGUF models Ollama and LM Studio keep here, and converted ones"))
    listing.set_defaults(func=cmd_model_list)
