"""The memory browser in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

End to end, as a person uses it: list, filter, search, open a memory, correct it and see the
new version in its history, archive and restore, delete, purge, move a task across the board,
open the graph and follow a node, export and import; a change refused without the token; and
proof that the page loads nothing from outside the machine. The tests save screenshots of
the main views to ``docs/`` (shown in the README), so those cannot go stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser_support import chromium, go, opened_ui, require_chromium, wait_for, wait_text
from ui_support import seed

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[1] / "docs"

require_chromium()
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    with chromium(performance_log=True) as driver:
        yield driver


@pytest.fixture
def ui(home, browser):
    with opened_ui(browser, home) as running:
        yield running


def rows(driver) -> list[str]:
    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#memory-list tr.memory-row")]


def shot(driver, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    driver.save_screenshot(str(DOCS / f"ui-{name}.png"))


def test_list_filter_search_and_open(ui, browser, home):
    wait_text(browser, "#count", "9 memories")
    assert browser.current_url.endswith("#/memories")  # the token left the address bar
    wait_for(browser, '#f-role option[value="home"]')  # the filter menus fill in after the list
    shot(browser, "memories")
    Select(browser.find_element(By.ID, "f-type")).select_by_value("task")
    wait_text(browser, "#count", "2 memories")
    assert all("task" in r for r in rows(browser))
    Select(browser.find_element(By.ID, "f-type")).select_by_value("")
    Select(browser.find_element(By.ID, "f-role")).select_by_value("home")
    wait_text(browser, "#count", "1 memory")
    assert "tea" in rows(browser)[0]
    Select(browser.find_element(By.ID, "f-role")).select_by_value("")
    wait_text(browser, "#count", "9 memories")
    browser.find_element(By.ID, "search").send_keys("who does Alice work with")
    browser.find_element(By.ID, "search-go").click()
    wait_text(browser, "#count", "found for")
    assert "Alice works with Bob" in rows(browser)[0]
    browser.find_element(By.CSS_SELECTOR, "#memory-list tr.memory-row a.open").click()
    wait_text(browser, "#memory-text", "Alice works with Bob on Project Apollo")
    assert "Project Apollo" in browser.find_element(By.ID, "fields").text


def test_edit_shows_the_new_version_in_history(ui, browser, home):
    memory_id = ui.ids["Alice prefers tea over coffee in the morning"]
    go(browser, ui, f"#/memory/{memory_id}", "#edit-text")
    text = browser.find_element(By.ID, "edit-text")
    text.clear()
    text.send_keys("Alice prefers green tea in the morning")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, '#history tr.version[data-version="2"]')
    row = browser.find_element(By.CSS_SELECTOR, '#history tr.version[data-version="2"]')
    assert "update" in row.text and "memcube-ui" in row.text and "green tea" in row.text
    assert home.cube("default").get([memory_id])[0].text == "Alice prefers green tea in the morning"
    shot(browser, "memory")


def test_archive_restore_delete_and_purge(ui, browser, home):
    memory_id = ui.ids["The quarterly report is due every March"]
    go(browser, ui, f"#/memory/{memory_id}", "#archive")
    browser.find_element(By.ID, "archive").click()
    wait_text(browser, "#status", "archived")
    browser.find_element(By.ID, "restore").click()
    wait_text(browser, "#status", "active")
    browser.find_element(By.ID, "delete").click()
    browser.find_element(By.ID, "confirm-ok").click()
    wait_text(browser, "#status", "deleted")
    assert home.cube("default").get([memory_id])[0].status == "deleted"
    browser.find_element(By.ID, "purge").click()
    explanation = browser.find_element(By.ID, "confirm-text").text
    assert "erases the memory completely" in explanation and "cannot be undone" in explanation
    browser.find_element(By.ID, "confirm-cancel").click()  # cancel first: nothing happens
    assert home.cube("default").get([memory_id])[0].status == "deleted"
    browser.find_element(By.ID, "purge").click()
    browser.find_element(By.ID, "confirm-ok").click()
    wait_text(browser, "#notice", "was purged")
    assert home.cube("default").history(memory_id)[-1].op == "purge"
    with pytest.raises(Exception, match="no memory"):
        home.cube("default").get([memory_id])


def test_move_a_task_across_the_board(ui, browser, home):
    task = ui.ids["Write the Apollo release notes"]
    go(browser, ui, "#/board", f'.task[data-id="{task}"]')
    card = browser.find_element(By.CSS_SELECTOR, f'.task[data-id="{task}"]')
    assert "overdue" in card.get_attribute("class") and "overdue" in card.text
    assert card.find_element(By.XPATH, "..").get_attribute("data-state") == "todo"
    shot(browser, "board")
    Select(card.find_element(By.CSS_SELECTOR, "select.move")).select_by_value("done")
    wait_for(browser, f'.column[data-state="done"] .task[data-id="{task}"]')
    assert home.cube("default").get([task])[0].state == "done"
    assert home.cube("default").history(task)[-1].client == "memcube-ui"


def test_open_the_graph_and_follow_a_node(ui, browser):
    go(browser, ui, "#/graph/Alice/1", "#graph g.node")
    wait_text(browser, "#graph-entity", "Alice")
    assert "works_with" in browser.find_element(By.ID, "relations").text
    shot(browser, "graph")
    browser.find_element(By.CSS_SELECTOR, '#graph g.node[data-entity="Bob"]').click()
    wait_text(browser, "#graph-entity", "Bob")
    mentions = browser.find_element(By.ID, "graph-memories").text
    assert "Carol starts school" in mentions and "Dinner with Carol and Bob" in mentions


def test_profile_preferences_timeline_and_activity_views(ui, browser, home):
    go(browser, ui, "#/profile", "#profile-text")
    assert browser.find_element(By.ID, "profile-text").text.strip() == home.cube("default").profile().text.strip()
    shot(browser, "profile")
    go(browser, ui, "#/preferences", ".role-group")
    groups = {g.get_attribute("data-role"): g.text for g in browser.find_elements(By.CSS_SELECTOR, ".role-group")}
    assert "tea" in groups["home"] and "agenda" in groups["work"]
    go(browser, ui, "#/timeline", "#timeline li")
    assert "Ship Project Apollo 2.0" in browser.find_element(By.ID, "timeline").text
    go(browser, ui, "#/activity", "#by-client tbody tr")
    assert "memcube-tests/1.0" in browser.find_element(By.ID, "by-client").text
    # No working-set page: it lives in each MCP server process (issue 30; test_ui_last_mile_browser).


def test_export_then_import(ui, browser, home):
    go(browser, ui, "#/transfer", "#export")
    browser.find_element(By.ID, "export").click()
    wait_for(browser, '#export-status[data-state="done"]')
    assert "9 memories" in browser.find_element(By.ID, "export-status").text
    archive = next((home.root / "exports").glob("default-*.zip"))
    purged = ui.ids["Bob's daughter Carol starts school in Lisbon in September"]
    home.cube("default").delete([purged], purge=True, client="test")
    browser.find_element(By.ID, "import-file").send_keys(str(archive))
    browser.find_element(By.ID, "import").click()
    wait_for(browser, '#import-status[data-state="done"]')
    assert "1 imported, 8 already there" in browser.find_element(By.ID, "import-status").text
    shot(browser, "transfer")
    assert home.cube("default").get([purged])[0].text.startswith("Bob's daughter Carol")


def test_a_change_without_the_right_token_is_refused(ui, browser, home):
    memory_id = ui.ids["The quarterly report is due every March"]
    go(browser, ui, f"#/memory/{memory_id}", "#archive")
    browser.execute_script("sessionStorage.setItem('memcube-ui-token', 'forged'); location.reload()")
    wait_text(browser, "#notice", "wrong token")
    browser.get(f"{ui.base}/#/memories")
    browser.execute_script("sessionStorage.removeItem('memcube-ui-token'); location.reload()")
    wait_text(browser, "#notice", "No token")
    status = browser.execute_async_script(
        "const done = arguments[0];"
        f"fetch('/api/cubes/default/memories/{memory_id}/archive', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: '{{}}'}})"
        ".then(r => done(r.status), e => done(String(e)))"
    )
    assert status == 401
    assert home.cube("default").get([memory_id])[0].status == "active"


def _requests(browser) -> tuple[list[str], dict[str, str]]:
    """URLs the browser asked for since the last call, and why any request was blocked (by URL)."""
    urls, ids, blocked = [], {}, {}
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            urls.append(params["request"]["url"])
            ids[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
            blocked[ids.get(params["requestId"], "?")] = params["blockedReason"]
    return urls, blocked


def test_the_page_loads_nothing_from_outside_the_machine(ui, browser):
    browser.get("about:blank")
    browser.get_log("performance")  # drop what came before
    browser.get(ui.url)  # a fresh start: the page, its script and style, every view's data
    wait_for(browser, "#memory-list tr.memory-row")
    for fragment, ready in [
        ("#/board", ".column"),
        ("#/graph/Alice/2", "#graph g.node"),
        ("#/preferences", ".role-group"),
        ("#/timeline", "#timeline li"),
        ("#/profile", "#profile-text"),
        ("#/activity", "#by-client"),
        ("#/transfer", "#export"),
    ]:
        go(browser, ui, fragment, ready)
    urls, _ = _requests(browser)
    assert any(u.endswith("/static/app.js") for u in urls) and any("/api/cubes/default/tasks" in u for u in urls)
    outside = [u for u in urls if not u.startswith((ui.base + "/", "data:", "blob:"))]
    assert outside == [], outside
    # A page that tries anyway (a script, an image, a fetch to another host) is stopped by the policy.
    violations = browser.execute_async_script("""
        const done = arguments[0], seen = [];
        document.addEventListener('securitypolicyviolation', (e) => seen.push(e.effectiveDirective));
        const img = document.createElement('img'); img.src = 'http://192.0.2.1/pixel.png'; document.body.append(img);
        const s = document.createElement('script'); s.src = 'http://192.0.2.1/x.js'; document.body.append(s);
        fetch('http://192.0.2.1/data').catch(() => {});
        setTimeout(() => done(seen), 1500);
    """)
    assert {"img-src", "script-src-elem", "connect-src"} <= set(violations)
    urls, blocked = _requests(browser)
    for url in urls:
        if not url.startswith(ui.base + "/"):
            assert blocked.get(url) == "csp", (url, blocked)


# -- the MCP App, rendered from its ui:// resource in a page that plays the host ---------------

HOST_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>test host</title></head>
<body style="margin:0;background:#eee"><iframe id="app" name="app" sandbox="allow-scripts" style="width:900px;height:760px;border:0;background:#fff"></iframe>
<script>
window.APP = __APP__; window.INPUT = __INPUT__; window.RESULT = __RESULT__;
window.calls = []; window.seen = [];
const frame = document.getElementById("app");
function post(message) { frame.contentWindow.postMessage({ jsonrpc: "2.0", ...message }, "*"); }
window.reply = (id, result) => post({ id, result });
window.addEventListener("message", (event) => {
  if (event.source !== frame.contentWindow) return;
  const m = event.data; window.seen.push(m.method || "response");
  if (m.method === "ui/initialize") post({ id: m.id, result: { protocolVersion: "2026-01-26", hostInfo: { name: "test-host", version: "1" }, hostCapabilities: { serverTools: {} }, hostContext: {} } });
  else if (m.method === "ui/notifications/initialized") { post({ method: "ui/notifications/tool-input", params: { arguments: window.INPUT } }); post({ method: "ui/notifications/tool-result", params: window.RESULT }); }
  else if (m.method === "tools/call") window.calls.push(m);
});
frame.srcdoc = window.APP;
</script></body></html>"""


def _script_json(value) -> str:
    return json.dumps(value).replace("</", "<\\/")


async def _host(browser, client, tmp_path, tool: str, arguments: dict, view: str):
    from tools.mcp_app import VIEWS

    html = (await client.read_resource(VIEWS[view][0])).contents[0].text
    result = await client.call_tool(tool, arguments)
    page = tmp_path / f"host-{view}.html"
    page.write_text(
        HOST_PAGE.replace("__APP__", _script_json(html))
        .replace("__INPUT__", _script_json(arguments))
        .replace("__RESULT__", _script_json(result.model_dump(mode="json", by_alias=True, exclude_none=True)))
    )
    browser.get(page.as_uri())


async def _pump(browser, client, ready_css: str, text: str = "", timeout: float = 30) -> None:
    """Play the host's bridge: forward the app's tools/call requests to the MCP server until ``ready_css`` shows (with ``text``)."""
    import anyio

    with anyio.fail_after(timeout):
        while True:
            browser.switch_to.default_content()
            for call in browser.execute_script("return window.calls.splice(0)"):
                answer = await client.call_tool(call["params"]["name"], call["params"].get("arguments") or {})
                browser.execute_script(
                    "reply(arguments[0], arguments[1])",
                    call["id"],
                    answer.model_dump(mode="json", by_alias=True, exclude_none=True),
                )
            browser.switch_to.frame("app")
            if any(text in e.text for e in browser.find_elements(By.CSS_SELECTOR, ready_css)):
                return
            await anyio.sleep(0.1)


@pytest.mark.anyio
async def test_the_mcp_app_renders_from_its_resource_and_calls_tools_through_the_host(home, browser, tmp_path):
    from mcp import Client
    from mcp.client.extension import advertise
    from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
    from support import CLIENT_INFO, CLIENT_NAME

    from server.app import build_server

    ids = seed(home)
    server = build_server(home, warm_up=False)
    async with Client(
        server, mode="auto", client_info=CLIENT_INFO, extensions=[advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]
    ) as client:
        await _host(browser, client, tmp_path, "memory_search", {"query": "who works with Bob"}, "search")
        await _pump(browser, client, "#hits li")
        assert "Alice works with Bob on Project Apollo" in browser.find_element(By.ID, "hits").text
        target = ids["Alice works with Bob on Project Apollo"]
        browser.find_element(By.CSS_SELECTOR, f'#hits .hit[data-id="{target}"]').click()
        await _pump(browser, client, "#detail-action")
        assert "add" in browser.find_element(By.ID, "detail-history").text
        browser.switch_to.default_content()
        shot(browser, "mcp-app")
        browser.switch_to.frame("app")
        browser.find_element(By.ID, "detail-action").click()
        await _pump(browser, client, "#detail-meta", "archived")
        assert browser.find_element(By.ID, "detail-action").text == "Restore"
        assert home.cube("default").get([target])[0].status == "archived"
        assert home.cube("default").history(target)[-1].client == CLIENT_NAME  # the host's client, through the bridge

        await _host(browser, client, tmp_path, "memory_profile", {}, "profile")
        await _pump(browser, client, "#profile-text")
        assert browser.find_element(By.ID, "profile-text").text.strip() == home.cube("default").profile().text.strip()
    browser.switch_to.default_content()
