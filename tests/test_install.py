"""`memcube install` / `uninstall` write each client's MCP config, in that client's format, safely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server import install
from server.install import CLIENT_FORMATS, InstallError, apply, config_path, plan_install, plan_uninstall

COMMAND = ["/opt/memcube/.venv/bin/memcube", "serve"]

LOCATIONS = [
    ("claude-desktop", "darwin", "Library/Application Support/Claude/claude_desktop_config.json"),
    ("claude-desktop", "linux", ".config/Claude/claude_desktop_config.json"),
    ("claude-desktop", "win32", "AppData/Roaming/Claude/claude_desktop_config.json"),
    ("claude-code", "linux", ".claude.json"),
    ("claude-code", "darwin", ".claude.json"),
    ("cursor", "linux", ".cursor/mcp.json"),
    ("cursor", "win32", ".cursor/mcp.json"),
    ("vscode", "linux", ".config/Code/User/mcp.json"),
    ("vscode", "darwin", "Library/Application Support/Code/User/mcp.json"),
    ("vscode", "win32", "AppData/Roaming/Code/User/mcp.json"),
]

# What each client's file holds after an install with --home /data/memories.
EXPECTED_ENTRY = {
    "claude-desktop": ("mcpServers", {"command": COMMAND[0], "args": ["serve"], "env": {"MEMCUBE_HOME": "/data/memories"}}),
    "claude-code": (
        "mcpServers",
        {"type": "stdio", "command": COMMAND[0], "args": ["serve"], "env": {"MEMCUBE_HOME": "/data/memories"}},
    ),
    "cursor": ("mcpServers", {"command": COMMAND[0], "args": ["serve"], "env": {"MEMCUBE_HOME": "/data/memories"}}),
    "vscode": ("servers", {"type": "stdio", "command": COMMAND[0], "args": ["serve"], "env": {"MEMCUBE_HOME": "/data/memories"}}),
}


@pytest.mark.parametrize(("client", "platform", "relative"), LOCATIONS)
def test_each_client_config_lives_where_that_client_reads_it(tmp_path, client, platform, relative):
    assert config_path(client, user_home=tmp_path, platform=platform) == tmp_path / relative


def test_windows_and_xdg_folders_follow_the_environment(tmp_path):
    roaming = tmp_path / "Roaming"
    assert config_path("claude-desktop", user_home=tmp_path, platform="win32", env={"APPDATA": str(roaming)}) == (
        roaming / "Claude" / "claude_desktop_config.json"
    )
    xdg = tmp_path / "xdg"
    assert (
        config_path("vscode", user_home=tmp_path, platform="linux", env={"XDG_CONFIG_HOME": str(xdg)})
        == xdg / "Code" / "User" / "mcp.json"
    )


def _install(client: str, home: Path, **options) -> install.Change:
    return plan_install(client, user_home=home, platform="linux", command=COMMAND, **options)


@pytest.mark.parametrize("client", list(EXPECTED_ENTRY))
def test_install_keeps_other_servers_and_settings_backs_up_and_is_idempotent(tmp_path, client):
    key, entry = EXPECTED_ENTRY[client]
    path = config_path(client, user_home=tmp_path, platform="linux")
    path.parent.mkdir(parents=True, exist_ok=True)
    other = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]}
    original = {"theme": "dark", key: {"memory": other}, "projects": {"/x": {"allowedTools": []}}}
    path.write_text(json.dumps(original, indent=4))

    change = _install(client, tmp_path, memcube_home="/data/memories")
    backup = apply(change)
    written = json.loads(path.read_text())
    assert written == {**original, key: {"memory": other, "memcube": entry}}
    assert backup is not None and json.loads(backup.read_text()) == original

    again = _install(client, tmp_path, memcube_home="/data/memories")
    assert not again.changed and apply(again) is None
    assert "already up to date" in again.diff()

    removal = plan_uninstall(client, user_home=tmp_path, platform="linux")
    apply(removal)
    assert json.loads(path.read_text()) == {**original, key: {"memory": other}}
    assert not plan_uninstall(client, user_home=tmp_path, platform="linux").changed


def test_install_creates_a_missing_file_and_its_folders(tmp_path):
    change = _install("claude-desktop", tmp_path)
    assert change.before is None and "+++ " in change.diff()
    assert apply(change) is None  # nothing to back up
    written = json.loads(config_path("claude-desktop", user_home=tmp_path, platform="linux").read_text())
    assert written == {"mcpServers": {"memcube": {"command": COMMAND[0], "args": ["serve"]}}}


def test_a_new_command_or_home_refreshes_the_entry(tmp_path):
    apply(_install("cursor", tmp_path))
    change = _install("cursor", tmp_path, memcube_home="/elsewhere")
    assert change.changed and '"MEMCUBE_HOME": "/elsewhere"' in change.diff()


@pytest.mark.parametrize("client", list(EXPECTED_ENTRY))
@pytest.mark.parametrize(
    "content", ['{"mcpServers": {"a": 1},}', "// comment\n{}", "[1, 2]", '{"mcpServers": [], "servers": []}']
)
def test_a_malformed_file_is_reported_and_left_untouched(tmp_path, client, content):
    if CLIENT_FORMATS[client].jsonc and content in ('{"mcpServers": {"a": 1},}', "// comment\n{}"):
        pytest.skip("VS Code reads comments and trailing commas (issue 30: test_last_mile_errors_install.py)")
    path = config_path(client, user_home=tmp_path, platform="linux")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    with pytest.raises(InstallError, match="nothing was changed"):
        _install(client, tmp_path)
    with pytest.raises(InstallError, match="nothing was changed"):
        plan_uninstall(client, user_home=tmp_path, platform="linux")
    assert path.read_text() == content
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_the_cli_dry_run_prints_the_change_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from server.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path))
    monkeypatch.setattr(install, "memcube_command", lambda: COMMAND)
    assert main(["--home", "/data/memories", "install", "claude-code", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '+    "memcube": {' in out and '"type": "stdio"' in out and "/data/memories" in out
    assert not (tmp_path / ".claude.json").exists()

    assert main(["install", "claude-code"]) == 0
    assert "MemCube installed in" in capsys.readouterr().out
    assert json.loads((tmp_path / ".claude.json").read_text())["mcpServers"]["memcube"]["command"] == COMMAND[0]
    assert main(["install", "claude-code"]) == 0
    assert "already installed" in capsys.readouterr().out
    assert main(["uninstall", "claude-code", "--dry-run"]) == 0
    assert '-    "memcube": {' in capsys.readouterr().out
    assert main(["uninstall", "claude-code"]) == 0
    assert json.loads((tmp_path / ".claude.json").read_text()) == {"mcpServers": {}}

    (tmp_path / ".cursor").mkdir()
    (tmp_path / ".cursor" / "mcp.json").write_text("{broken")
    assert main(["install", "cursor"]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert (tmp_path / ".cursor" / "mcp.json").read_text() == "{broken"


def test_the_written_command_is_this_environments_memcube_script():
    command = install.memcube_command()
    assert Path(command[0]).is_absolute() and Path(command[0]).exists()
    assert command[-1] == "serve"
