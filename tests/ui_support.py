"""Run the memory browser (``server.ui``) on a real loopback socket in a background thread, for tests."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from memory import MemoryHome
from server.ui.app import UiApp, build_app, launch_url
from server.ui.security import bind_loopback


@dataclass
class RunningUi:
    base: str  # http://127.0.0.1:PORT
    ui: UiApp

    @property
    def token(self) -> str:
        return self.ui.token

    @property
    def url(self) -> str:
        """A fresh one-time launch address (each read issues a new one, as each `memcube ui` start does)."""
        port = int(self.base.rsplit(":", 1)[1])
        return launch_url("127.0.0.1", port, self.ui.logins.issue())

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        token: str | None = "",
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any]:
        """One HTTP request; ``token=""`` means this launch's token, ``None`` none at all."""
        sent = {"Content-Type": "application/json"} if body is not None else {}
        if token is not None:
            sent["X-MemCube-Token"] = token or self.token
        sent.update(headers or {})
        payload = json.dumps(body).encode() if body is not None else data
        request = urllib.request.Request(self.base + path, method=method, data=payload, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw


@contextmanager
def running_ui(home: MemoryHome) -> Iterator[RunningUi]:
    sock = bind_loopback("127.0.0.1", 0)
    port = sock.getsockname()[1]
    ui = build_app(home)
    server = uvicorn.Server(uvicorn.Config(ui.app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the UI server did not start")
        time.sleep(0.02)
    try:
        yield RunningUi(base=f"http://127.0.0.1:{port}", ui=ui)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def seeded_ui(home: MemoryHome) -> Iterator[RunningUi]:
    """The seeded cube below, served; ``.ids`` maps each seed's name to its memory id."""
    ids = seed(home)
    with running_ui(home) as running:
        running.ids = ids  # type: ignore[attr-defined]
        yield running


def seed(home: MemoryHome, cube: str = "default") -> dict[str, str]:
    """A small realistic cube: facts, preferences by role, a goal and tasks (one overdue), relations."""
    c = home.cube(cube, create=True)
    items = [
        {
            "text": "Alice prefers tea over coffee in the morning",
            "type": "preference",
            "subject": "morning drink",
            "role": "home",
            "tags": ["food"],
        },
        {
            "text": "In meetings Alice wants a written agenda a day ahead",
            "type": "preference",
            "subject": "meetings",
            "role": "work",
        },
        {
            "text": "Alice works with Bob on Project Apollo",
            "type": "fact",
            "entities": ["Alice", "Bob", "Project Apollo"],
            "relations": [
                {"subject": "Alice", "predicate": "works_with", "object": "Bob"},
                {"subject": "Bob", "predicate": "leads", "object": "Project Apollo"},
            ],
            "tags": ["work"],
        },
        {
            "text": "Bob's daughter Carol starts school in Lisbon in September",
            "type": "fact",
            "entities": ["Bob", "Carol", "Lisbon"],
            "relations": [{"subject": "Carol", "predicate": "daughter_of", "object": "Bob"}],
        },
        {
            "text": "Dinner with Carol and Bob at the harbour",
            "type": "event",
            "occurred_at": "2026-11-20T19:00:00Z",
            "entities": ["Carol", "Bob"],
            "tags": ["family"],
        },
        {"text": "Ship Project Apollo 2.0", "type": "goal", "state": "active", "role": "work"},
        {"text": "Write the Apollo release notes", "type": "task", "state": "todo", "due_at": "2026-01-05", "role": "work"},
        {
            "text": "Book the venue for the Apollo launch party",
            "type": "task",
            "state": "in_progress",
            "due_at": "2099-03-01",
            "role": "work",
        },
        {"text": "The quarterly report is due every March", "type": "note", "tags": ["work", "reports"]},
    ]
    outcomes = c.add(items, client="memcube-tests/1.0")
    c.try_sync_graph()
    return {item["text"]: o.id for item, o in zip(items, outcomes, strict=True)}
