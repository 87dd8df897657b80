"""The memory browser's server (``memcube ui``): its guard and its JSON API, over a real loopback socket.

Security: no token, a wrong token, a cross-origin or cross-site write, a form post, a foreign
Host (DNS rebinding), a non-loopback bind, and a cube the UI principal may not read or write:
each is refused, and nothing is shown or changed. The API: paging with a cursor, filters,
search, edits recorded as made by ``memcube-ui``, archive/restore/delete/purge, progress.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from ui_support import running_ui, seed, seeded_ui

from memory import MemoryHome
from server.ui.security import CSP, UiConfigError, bind_loopback


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


@pytest.fixture
def ui(home):
    with seeded_ui(home) as running:
        yield running


def test_every_api_call_needs_the_launch_token(ui):
    status, body = ui.call("GET", "/api/cubes", token=None)
    assert status == 401 and "no token" in body["error"]
    status, body = ui.call("GET", "/api/cubes", token="not-the-token")
    assert status == 401 and "wrong token" in body["error"]
    status, body = ui.call("GET", "/api/cubes")
    assert status == 200 and body == [{"cube": "default", "access": "write"}]


def test_a_mutation_without_the_token_changes_nothing(ui, home):
    memory_id = ui.ids["The quarterly report is due every March"]
    for token in (None, "wrong"):
        status, _ = ui.call("POST", f"/api/cubes/default/memories/{memory_id}/archive", body={}, token=token)
        assert status == 401
        status, _ = ui.call("PATCH", f"/api/cubes/default/memories/{memory_id}", body={"text": "changed"}, token=token)
        assert status == 401
    memory = home.cube("default").get([memory_id])[0]
    assert memory.status == "active" and memory.version == 1 and memory.text == "The quarterly report is due every March"


def test_cross_origin_and_cross_site_writes_are_refused(ui, home):
    memory_id = ui.ids["The quarterly report is due every March"]
    path = f"/api/cubes/default/memories/{memory_id}/archive"
    status, body = ui.call("POST", path, body={}, headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-origin" in body["error"]
    status, body = ui.call("POST", path, body={}, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    # A plain HTML form can post without a preflight: its content types are refused.
    status, _ = ui.call("POST", path, data=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, _ = ui.call("POST", path, data=b"{}", headers={"Content-Type": "text/plain"})
    assert status == 415
    assert home.cube("default").get([memory_id])[0].status == "active"
    # The same call from the page's own origin goes through.
    port = ui.base.rsplit(":", 1)[1]
    status, body = ui.call("POST", path, body={}, headers={"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200 and body["memory"]["status"] == "archived"


def test_a_foreign_host_header_is_refused(ui):
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
    status, _ = ui.call("GET", "/api/cubes", headers={"Host": "evil.example:80"})
    assert status == 403
    status, _ = ui.call("GET", "/", token=None, headers={"Host": "evil.example"})
    assert status == 403


def test_pages_carry_a_strict_content_security_policy(ui):
    import urllib.request

    with urllib.request.urlopen(ui.base + "/") as response:
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Frame-Options"] == "DENY"
        html = response.read().decode()
    assert "http://" not in html and "https://" not in html  # nothing referenced outside this server
    assert "default-src 'none'" in CSP and "connect-src 'self'" in CSP and "script-src 'self'" in CSP


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.com", "::"])
def test_a_non_loopback_bind_is_refused(host):
    with pytest.raises(UiConfigError, match="this computer only"):
        bind_loopback(host, 0)


def test_the_command_refuses_a_non_loopback_address(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "--home", str(tmp_path), "ui", "--host", "0.0.0.0", "--no-open"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "refusing to serve" in done.stderr


def test_a_cube_the_ui_may_not_read_is_neither_shown_nor_changed(tmp_path, shared_embedder):
    (tmp_path / "config.toml").write_text(
        '[access]\ndefault = "write"\n\n[access.clients."memcube-ui"]\n"*" = "write"\nprivate = "none"\nshared = "read"\n'
    )
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        secret = seed(home, "private")
        shared = home.cube("shared", create=True).add([{"text": "The team meets on Tuesdays"}], client="t")[0].id
        seed(home, "default")
        with running_ui(home) as ui:
            status, cubes = ui.call("GET", "/api/cubes")
            assert status == 200 and {c["cube"] for c in cubes} == {"default", "shared"}
            memory_id = secret["The quarterly report is due every March"]
            for method, path, body in [
                ("GET", "/api/cubes/private/memories", None),
                ("GET", "/api/cubes/private/search?q=report", None),
                ("GET", f"/api/cubes/private/memories/{memory_id}", None),
                ("GET", "/api/cubes/private/profile", None),
                ("GET", "/api/cubes/private/graph?entity=Alice", None),
                ("PATCH", f"/api/cubes/private/memories/{memory_id}", {"text": "leaked"}),
                ("POST", f"/api/cubes/private/memories/{memory_id}/purge", {}),
                ("POST", "/api/cubes/private/export", {}),
            ]:
                status, answer = ui.call(method, path, body=body)
                assert status == 403, (method, path, answer)
                assert "may not" in answer["error"] and "quarterly" not in str(answer)
            # Read-only cube: reading works, changing does not.
            status, page = ui.call("GET", "/api/cubes/shared/memories")
            assert status == 200 and page["memories"][0]["id"] == shared
            status, _ = ui.call("POST", f"/api/cubes/shared/memories/{shared}/archive", body={})
            assert status == 403
        private = home.cube("private")
        assert private.get([memory_id])[0].text == "The quarterly report is due every March"
        assert private.get([memory_id])[0].version == 1
        assert home.cube("shared").get([shared])[0].status == "active"
        assert any(d["client"] == "memcube-ui" for d in private.store.denials())
    finally:
        home.close()


def test_pages_follow_a_cursor_through_every_memory_once(home):
    cube = home.cube("default", create=True)
    added = []
    for start in range(0, 230, 115):
        added += [
            o.id
            for o in cube.add(
                [
                    {"text": f"note number {i} about paging", "tags": ["even" if i % 2 == 0 else "odd"]}
                    for i in range(start, start + 115)
                ],
                client="t",
            )
        ]
    with running_ui(home) as ui:
        seen, cursor, first = [], "", None
        while True:
            status, page = ui.call("GET", f"/api/cubes/default/memories?limit=50&cursor={cursor}")
            assert status == 200
            first = first or page
            seen += [m["id"] for m in page["memories"]]
            if not page["next"]:
                break
            cursor = page["next"]
        assert first["total"] == 230 and sorted(seen) == sorted(added) and len(seen) == len(set(seen))
        status, page = ui.call("GET", "/api/cubes/default/memories?tag=even&limit=200")
        assert status == 200 and page["total"] == 115 and all("even" in m["tags"] for m in page["memories"])
        status, body = ui.call("GET", "/api/cubes/default/memories?cursor=bogus")
        assert status == 400 and "cursor" in body["error"]
        status, body = ui.call("GET", "/api/cubes/default/memories?status=gone")
        assert status == 400


def test_edits_are_new_versions_recorded_as_the_ui(ui, home):
    memory_id = ui.ids["Alice prefers tea over coffee in the morning"]
    status, body = ui.call(
        "PATCH", f"/api/cubes/default/memories/{memory_id}", body={"text": "Alice prefers green tea in the morning"}
    )
    assert status == 200
    assert body["memory"]["version"] == 2 and body["memory"]["text"] == "Alice prefers green tea in the morning"
    assert body["history"][-1]["client"] == "memcube-ui" and body["history"][-1]["changes"]["text"]["old"].startswith(
        "Alice prefers tea"
    )
    status, body = ui.call("PATCH", f"/api/cubes/default/memories/{memory_id}", body={"importance": 7})
    assert status == 400 and "importance" in body["error"]
    status, found = ui.call("GET", "/api/cubes/default/search?q=green%20tea&mode=words")
    assert status == 200 and found["hits"][0]["id"] == memory_id and set(found["hits"][0]["signals"]) == {"keyword"}
    status, activity = ui.call("GET", "/api/cubes/default/activity")
    assert any(r["client"] == "memcube-ui" and r["op"] == "update" for r in activity["by_client"])


def test_archive_restore_delete_and_purge(ui, home):
    memory_id = ui.ids["The quarterly report is due every March"]
    base = f"/api/cubes/default/memories/{memory_id}"
    for action, expected in [("archive", "archived"), ("restore", "active"), ("delete", "deleted")]:
        status, body = ui.call("POST", f"{base}/{action}", body={})
        assert status == 200 and body["memory"]["status"] == expected, body
    status, body = ui.call("POST", f"{base}/restore", body={})
    assert status == 409 or status == 400
    status, body = ui.call("POST", f"{base}/purge", body={})
    assert status == 200 and body == {"purged": memory_id}
    status, body = ui.call("GET", base)
    assert status == 404
    assert [v.op for v in home.cube("default").history(memory_id)][-1] == "purge"


def test_progress_moves_a_task_and_logs_feedback(ui, home):
    task = ui.ids["Write the Apollo release notes"]
    status, body = ui.call("POST", f"/api/cubes/default/memories/{task}/progress", body={"state": "in_progress"})
    assert status == 200 and body["state"] == "in_progress"
    status, body = ui.call(
        "POST",
        f"/api/cubes/default/memories/{task}/progress",
        body={"feedback": {"tried": "a first draft", "result": "too long"}},
    )
    assert status == 200 and body["feedback"][-1]["tried"] == "a first draft" and body["feedback"][-1]["client"] == "memcube-ui"
    status, body = ui.call("POST", f"/api/cubes/default/memories/{task}/progress", body={"state": "finished"})
    assert status == 400


def test_export_then_import_runs_as_jobs(ui, home):
    status, job = ui.call("POST", "/api/cubes/default/export", body={})
    assert status == 200 and job["kind"] == "export"
    deadline = time.monotonic() + 60
    while not job["done"] and time.monotonic() < deadline:
        time.sleep(0.1)
        job = ui.call("GET", f"/api/jobs/{job['id']}")[1]
    assert job["phase"] == "done" and job["result"]["memories"] == 9
    status, archive = ui.call("GET", f"/api/jobs/{job['id']}/file")
    assert status == 200 and archive[:2] == b"PK"
    status, job = ui.call("POST", "/api/cubes/copy/import", data=archive, headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    while not job["done"] and time.monotonic() < deadline:
        time.sleep(0.1)
        job = ui.call("GET", f"/api/jobs/{job['id']}")[1]
    # On either engine: an archive imports into a store's cube too.
    assert job["phase"] == "done" and job["result"]["imported"] == 9, job
    assert home.cube("copy").stats().active == 9
