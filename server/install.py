"""``memcube install CLIENT`` / ``memcube uninstall CLIENT``: write MemCube into a client's MCP config.

Each client keeps its MCP servers in a JSON file of its own:

| client | file | key | entry |
|---|---|---|---|
| ``claude-desktop`` | macOS ``~/Library/Application Support/Claude/claude_desktop_config.json``, Windows ``%APPDATA%\\Claude\\claude_desktop_config.json``, Linux ``~/.config/Claude/claude_desktop_config.json`` | ``mcpServers`` | ``{command, args, env}`` |
| ``claude-code`` | ``~/.claude.json`` (user scope) | ``mcpServers`` | ``{type: "stdio", command, args, env}`` |
| ``cursor`` | ``~/.cursor/mcp.json`` | ``mcpServers`` | ``{command, args, env}`` |
| ``vscode`` | the user ``mcp.json``: ``~/.config/Code/User``, ``~/Library/Application Support/Code/User``, ``%APPDATA%\\Code\\User`` | ``servers`` | ``{type: "stdio", command, args, env}`` |

A change touches only the ``memcube`` entry: other servers and every other setting stay
as they were. Installing twice changes nothing the second time; a file that changes is
first copied to ``<file>.bak-<time>``; a file that is not valid JSON is left alone and
reported. VS Code reads ``mcp.json`` as JSON with comments (``//``, ``/* */``, trailing
commas): there only the ``memcube`` entry's text is written or removed, and the person's
comments and layout stay as they were (``server/jsonc.py``). The functions take the user's home folder, platform and environment as
arguments, so tests run them on a temporary home; the CLI passes the real ones.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import jsonc

SERVER_NAME = "memcube"
CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode")


class InstallError(Exception):
    """The client's config cannot be changed safely; the message says why and what to do."""


@dataclass(frozen=True)
class Client:
    name: str
    key: str  # the object in the file that maps server names to entries
    typed: bool  # entries carry "type": "stdio"
    jsonc: bool = False  # the client reads comments and trailing commas: keep them, edit only our entry


CLIENT_FORMATS = {
    "claude-desktop": Client("claude-desktop", "mcpServers", typed=False),
    "claude-code": Client("claude-code", "mcpServers", typed=True),
    "cursor": Client("cursor", "mcpServers", typed=False),
    "vscode": Client("vscode", "servers", typed=True, jsonc=True),
}


def _roaming(user_home: Path, env: Mapping[str, str]) -> Path:
    return Path(env["APPDATA"]) if env.get("APPDATA") else user_home / "AppData" / "Roaming"


def _xdg_config(user_home: Path, env: Mapping[str, str]) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else user_home / ".config"


def config_path(client: str, *, user_home: Path, platform: str, env: Mapping[str, str] | None = None) -> Path:
    """Where ``client`` keeps its MCP servers for this user (``platform`` as in ``sys.platform``)."""
    env = env or {}
    user_home = Path(user_home)
    mac, windows = platform == "darwin", platform.startswith("win")
    if client == "claude-desktop":
        if mac:
            return user_home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
        if windows:
            return _roaming(user_home, env) / "Claude" / "claude_desktop_config.json"
        return _xdg_config(user_home, env) / "Claude" / "claude_desktop_config.json"
    if client == "claude-code":
        return user_home / ".claude.json"
    if client == "cursor":
        return user_home / ".cursor" / "mcp.json"
    if client == "vscode":
        if mac:
            return user_home / "Library" / "Application Support" / "Code" / "User" / "mcp.json"
        if windows:
            return _roaming(user_home, env) / "Code" / "User" / "mcp.json"
        return _xdg_config(user_home, env) / "Code" / "User" / "mcp.json"
    raise InstallError(f"unknown client {client!r}: choose one of {', '.join(CLIENTS)}")


def memcube_command() -> list[str]:
    """This environment's ``memcube serve``: the script beside the running Python, by absolute path."""
    scripts = Path(sys.executable).parent
    for candidate in (scripts / "memcube", scripts / "memcube.exe"):
        if candidate.is_file():
            return [str(candidate.resolve()), "serve"]
    found = shutil.which("memcube")
    if found:
        return [str(Path(found).resolve()), "serve"]
    return [str(Path(sys.executable).resolve()), "-m", "server", "serve"]


def server_entry(client: str, command: list[str], memcube_home: Path | str | None = None) -> dict[str, Any]:
    fmt = CLIENT_FORMATS[client]
    entry: dict[str, Any] = {"type": "stdio"} if fmt.typed else {}
    entry["command"] = command[0]
    entry["args"] = list(command[1:])
    env = {"MEMCUBE_HOME": str(memcube_home)} if memcube_home else {}
    if env or client == "claude-code":
        entry["env"] = env
    return entry


@dataclass
class Change:
    client: str
    path: Path
    before: str | None  # the file's text, None when it does not exist
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        if not self.changed:
            return f"{self.path}: already up to date\n"
        old = (self.before or "").splitlines(keepends=True)
        new = self.after.splitlines(keepends=True)
        label = str(self.path)
        return "".join(difflib.unified_diff(old, new, fromfile=label if self.before is not None else "/dev/null", tofile=label))


def _load(path: Path, client: str) -> tuple[str | None, dict[str, Any]]:
    if not path.exists():
        return None, {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"cannot read {path}: {exc}; nothing was changed") from None
    if not text.strip():
        return text, {}
    try:
        data = jsonc.loads(text) if CLIENT_FORMATS[client].jsonc else json.loads(text)
    except jsonc.JsoncError as exc:
        raise InstallError(f"{path} is not valid JSON with comments ({exc}); nothing was changed") from None
    except ValueError as exc:
        raise InstallError(
            f"{path} is not valid JSON ({exc}); nothing was changed. Fix the file (comments and trailing "
            f"commas are not JSON) or move it away, then run this again"
        ) from None
    if not isinstance(data, dict):
        raise InstallError(f"{path} holds a JSON {type(data).__name__}, not an object; nothing was changed")
    key = CLIENT_FORMATS[client].key
    if key in data and not isinstance(data[key], dict):
        raise InstallError(f"{path}: {key!r} is not a JSON object of servers; nothing was changed")
    return text, data


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def plan_install(
    client: str,
    *,
    user_home: Path,
    platform: str,
    command: list[str],
    memcube_home: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    name: str = SERVER_NAME,
) -> Change:
    """The change that adds (or refreshes) MemCube's entry in ``client``'s config; nothing is written."""
    path = config_path(client, user_home=user_home, platform=platform, env=env)
    before, data = _load(path, client)
    key = CLIENT_FORMATS[client].key
    servers = dict(data.get(key) or {})
    entry = server_entry(client, command, memcube_home)
    if servers.get(name) == entry:
        return Change(client, path, before, before if before is not None else _dump({**data, key: servers}))
    if before is not None and before.strip() and CLIENT_FORMATS[client].jsonc:
        return Change(client, path, before, jsonc.with_member(before, key, name, entry))
    servers[name] = entry
    return Change(client, path, before, _dump({**data, key: servers}))


def plan_uninstall(
    client: str,
    *,
    user_home: Path,
    platform: str,
    env: Mapping[str, str] | None = None,
    name: str = SERVER_NAME,
) -> Change:
    """The change that removes MemCube's entry from ``client``'s config (none when it is not there)."""
    path = config_path(client, user_home=user_home, platform=platform, env=env)
    before, data = _load(path, client)
    key = CLIENT_FORMATS[client].key
    servers = data.get(key) or {}
    if before is None or name not in servers:
        return Change(client, path, before, before if before is not None else "")
    if CLIENT_FORMATS[client].jsonc:
        return Change(client, path, before, jsonc.without_member(before, key, name))
    data = dict(data)
    data[key] = {k: v for k, v in servers.items() if k != name}
    return Change(client, path, before, _dump(data))


def apply(change: Change, *, now: datetime | None = None) -> Path | None:
    """Write the change (atomically); returns the backup of the old file, if there was one."""
    if not change.changed:
        return None
    backup = None
    change.path.parent.mkdir(parents=True, exist_ok=True)
    if change.before is not None:
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
        backup = change.path.with_name(f"{change.path.name}.bak-{stamp}")
        shutil.copy2(change.path, backup)
    tmp = change.path.with_name(change.path.name + ".memcube-tmp")
    tmp.write_text(change.after, encoding="utf-8")
    if change.path.exists():
        shutil.copymode(change.path, tmp)
    os.replace(tmp, change.path)
    return backup
