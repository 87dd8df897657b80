"""The MCP Bundle: manifest.json lists what the server serves, validates, and packs into a bundle that runs.

The npx tests download @anthropic-ai/mcpb from npm on first use; they are skipped only
where Node.js is not installed at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from support import close_pipes

from server.manifest import MANIFEST_PATH, dumps, live_listing, render

ROOT = Path(__file__).resolve().parents[1]
MCPB = "@anthropic-ai/mcpb@2"


def needs_npx(test):
    """A test that runs a tool from npm: the external tier, skipped without Node.js."""
    skip = pytest.mark.skipif(shutil.which("npx") is None, reason="Node.js (npx) is not installed")
    return pytest.mark.external(skip(test))


def _manifest() -> dict:
    return json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))


def test_the_manifest_lists_exactly_the_tools_and_prompts_the_server_serves():
    """If this fails after adding or changing a tool or prompt: `uv run python -m server.manifest --write`."""
    manifest, live = _manifest(), live_listing()
    assert [t["name"] for t in manifest["tools"]] == [t["name"] for t in live["tools"]], (
        "run `uv run python -m server.manifest --write`"
    )
    assert [p["name"] for p in manifest["prompts"]] == [p["name"] for p in live["prompts"]], (
        "run `uv run python -m server.manifest --write`"
    )
    assert dumps(manifest) == dumps(render(manifest, live)), (
        "manifest.json is stale: run `uv run python -m server.manifest --write`"
    )


def test_the_manifest_runs_the_server_and_asks_for_the_data_folder_and_model():
    manifest = _manifest()
    assert manifest["manifest_version"] == "0.4" and manifest["server"]["type"] == "uv"
    config = manifest["server"]["mcp_config"]
    assert config["args"][-2:] == ["memcube", "serve"] and "${__dirname}" in config["args"]
    assert config["env"] == {
        "MEMCUBE_HOME": "${user_config.data_folder}",
        "MEMCUBE_EMBEDDING_MODEL": "${user_config.embedding_model}",
        "MEMCUBE_LOCAL_MODEL": "${user_config.local_model}",
        "MEMCUBE_STORE": "${user_config.store_url}",
    }
    assert {k: (v["type"], v["required"]) for k, v in manifest["user_config"].items()} == {
        "data_folder": ("directory", False),
        "embedding_model": ("directory", False),
        "local_model": ("string", False),
        "store_url": ("string", False),
    }
    assert config["args"][config["args"].index("--extra") + 1] == "postgres"  # the store's driver is installed
    assert set(manifest["compatibility"]["platforms"]) == {"darwin", "linux", "win32"}
    assert manifest["compatibility"]["runtimes"]["python"] == ">=3.11"


def test_an_unset_bundle_setting_reaches_the_server_as_not_set(monkeypatch, tmp_path):
    """Claude Desktop passes an optional setting the user left empty as the literal ``${user_config.x}``."""
    from memory.config import default_home, load_config

    monkeypatch.setenv("MEMCUBE_EMBEDDING_MODEL", "${user_config.embedding_model}")
    monkeypatch.setenv("MEMCUBE_HOME", "${user_config.data_folder}")
    monkeypatch.setenv("MEMCUBE_LOCAL_MODEL", "${user_config.local_model}")
    monkeypatch.setenv("MEMCUBE_STORE", "${user_config.store_url}")
    config = load_config(tmp_path)
    assert (config.embedding.model_dir, config.local_model.path, config.store.url) == (None, None, None)
    assert "${" not in str(default_home())


@needs_npx
def test_mcpb_validate_accepts_the_manifest():
    result = subprocess.run(["npx", "-y", MCPB, "validate", str(MANIFEST_PATH)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validation passes" in result.stdout


def _substitute(value, variables: dict[str, str]):
    """The bundle host's variable substitution: ``${name}`` replaced when known, left as is otherwise."""
    if isinstance(value, str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    return {k: _substitute(v, variables) for k, v in value.items()}


def _uv() -> str | None:
    """The uv binary: the one running these tests (``uv run`` sets $UV), else the one on PATH."""
    return os.environ.get("UV") or shutil.which("uv")


@needs_npx
@pytest.mark.skipif(_uv() is None, reason="uv is not installed")
def test_a_packed_bundle_starts_and_answers_tools_list(tmp_path):
    bundle = tmp_path / "memcube.mcpb"
    packed = subprocess.run(["npx", "-y", MCPB, "pack", str(ROOT), str(bundle)], capture_output=True, text=True, timeout=300)
    assert packed.returncode == 0, packed.stdout + packed.stderr
    unpacked = tmp_path / "installed"
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
    assert {"manifest.json", "pyproject.toml", "uv.lock", "server/cli.py", "memory/cube.py", "tools/memory_tools.py"} <= set(
        names
    )
    assert not [n for n in names if n.startswith((".venv/", ".git/", "tests/", "bench/")) or "__pycache__" in n]

    # Start it the way Claude Desktop does: the manifest's mcp_config, variables substituted,
    # the data folder set and the model folder left empty.
    config = _substitute(
        _manifest()["server"]["mcp_config"], {"__dirname": str(unpacked), "user_config.data_folder": str(tmp_path / "data")}
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "MEMCUBE_HOME", "MEMCUBE_EMBEDDING_MODEL", "MEMCUBE_LOCAL_MODEL")
    }
    env.update(config["env"])
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "bundle-test", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "memory_add", "arguments": {"text": "Installed from a bundle"}},
        },
    ]
    command = _uv() if config["command"] == "uv" else config["command"]
    proc = subprocess.Popen(
        [command, *config["args"]], env=env, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    answers: dict[int, dict] = {}

    def send(*messages: dict) -> None:
        assert proc.stdin is not None
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages).encode())
        proc.stdin.flush()

    def receive_until(wanted: int) -> None:
        assert proc.stdout is not None
        while wanted not in answers:
            line = proc.stdout.readline()
            assert line, (
                f"the bundled server closed stdout: {proc.stderr.read().decode()[-3000:] if proc.poll() is not None else ''}"
            )
            message = json.loads(line)
            answers[message["id"]] = message

    try:
        send(*requests)
        receive_until(3)
        # Asked once the real server is up (not from the recorded handshake).
        send({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
        receive_until(4)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        close_pipes(proc)
    assert answers[1]["result"]["serverInfo"]["name"] == "memcube"
    assert "memory_add" in {t["name"] for t in answers[2]["result"]["tools"]}
    assert [t["name"] for t in answers[4]["result"]["tools"]] == [t["name"] for t in _manifest()["tools"]]
    # The real server answered too: it embedded with the bundled model (the model setting was
    # left empty) and wrote to the configured data folder.
    assert not answers[3]["result"].get("isError"), answers[3]
    assert (tmp_path / "data" / "cubes" / "default" / "memory.db").is_file()


def test_a_store_configured_without_its_driver_says_how_to_install_it(monkeypatch, tmp_path):
    import sys

    from memory import MemoryHome
    from memory.errors import Unavailable

    monkeypatch.setitem(sys.modules, "memory.store.postgres.shared_store", None)  # as if psycopg were not installed
    monkeypatch.setenv("MEMCUBE_STORE", "postgresql://memcube@db.example/memcube")
    with pytest.raises(Unavailable, match="--extra postgres"):
        MemoryHome(tmp_path)
