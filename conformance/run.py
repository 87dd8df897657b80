"""Run the official MCP conformance suite against ``memcube serve --http``.

    uv run python conformance/run.py            # exit 0: only the expected failures failed

The suite (``@modelcontextprotocol/conformance``) tests servers over streamable HTTP and
needs Node 22. Both are installed from npm into a cache folder on first use
(``$MEMCUBE_CONFORMANCE_CACHE``, default ``~/.cache/memcube/conformance``): a Node 22 new
enough is taken from ``PATH`` when there is one, else the ``node-<os>-<arch>@22`` package
provides it. The server runs on a free loopback port over a temporary data folder.
``conformance/expected-failures.yml`` lists the scenarios MemCube is expected to fail,
each with its reason; the suite fails the run on any other failure, and on a listed
scenario that passes.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_FAILURES = Path(__file__).with_name("expected-failures.yml")
SUITE = "@modelcontextprotocol/conformance@0.1.16"
NODE_MAJOR = 22


def cache_dir() -> Path:
    configured = os.environ.get("MEMCUBE_CONFORMANCE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "memcube" / "conformance"


def _node_version(node: str) -> int:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def _npm_install(prefix: Path, *packages: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("conformance: npm is needed to install the suite (and Node 22); install Node.js first")
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(prefix), *packages],
        check=True,
        stdout=sys.stderr,
    )


def node22(cache: Path) -> str:
    """A Node 22+ binary: the one on PATH if it is new enough, else one installed from npm."""
    system = shutil.which("node")
    if system and _node_version(system) >= NODE_MAJOR:
        return system
    os_name = {"linux": "linux", "darwin": "darwin", "win32": "win"}.get(sys.platform, sys.platform)
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), "x64")
    package = f"node-{os_name}-{arch}"
    binary = cache / "node_modules" / package / "bin" / ("node.exe" if os_name == "win" else "node")
    if not binary.is_file() or _node_version(str(binary)) < NODE_MAJOR:
        _npm_install(cache, f"{package}@{NODE_MAJOR}")
    return str(binary)


def suite_entry(cache: Path) -> Path:
    entry = cache / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    installed = cache / "node_modules" / "@modelcontextprotocol" / "conformance" / "package.json"
    wanted = SUITE.rsplit("@", 1)[1]
    if not entry.is_file() or json.loads(installed.read_text()).get("version") != wanted:
        _npm_install(cache, SUITE)
    return entry


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"conformance: memcube serve --http exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"conformance: the server did not listen on port {port} within {timeout:.0f} s")


def summarise(output: str) -> dict[str, str]:
    """Scenario -> passed/failed, from the suite's summary lines ("✓ ping: 1 passed, 0 failed")."""
    outcome: dict[str, str] = {}
    for match in re.finditer(r"^[^\w\s]\s+([\w-]+): (\d+) passed, (\d+) failed", output, re.MULTILINE):
        outcome[match.group(1)] = "failed" if int(match.group(3)) else "passed"
    return outcome


def main() -> int:
    cache = cache_dir()
    node = node22(cache)
    entry = suite_entry(cache)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="memcube-conformance-") as scratch:
        env = {**os.environ, "MEMCUBE_HOME": str(Path(scratch) / "home")}
        env.pop("MEMCUBE_HTTP_TOKEN", None)
        server = subprocess.Popen(
            # The suite sends no bearer token: this loopback server for it alone opts out (it warns).
            [sys.executable, "-m", "server", "serve", "--http", f"127.0.0.1:{port}", "--no-auth"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(port, server)
            results = Path(scratch) / "results"
            run = subprocess.run(
                [
                    node,
                    str(entry),
                    "server",
                    "--url",
                    f"http://127.0.0.1:{port}/mcp",
                    "--expected-failures",
                    str(EXPECTED_FAILURES),
                    "-o",
                    str(results),
                ],
                capture_output=True,
                text=True,
                timeout=540,
            )
            outcome = summarise(run.stdout)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    sys.stdout.write(run.stdout[-6000:])
    sys.stderr.write(run.stderr[-3000:])
    passed = sorted(n for n, o in outcome.items() if o == "passed")
    failed = sorted(n for n, o in outcome.items() if o == "failed")
    print(
        f"\nconformance: {len(passed)} scenarios passed, {len(failed)} failed (expected failures: see {EXPECTED_FAILURES.name}); suite exit {run.returncode}"
    )
    print(json.dumps({"passed": passed, "failed": failed}))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
