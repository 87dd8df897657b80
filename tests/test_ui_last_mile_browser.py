"""Issue 30's "last mile" of the memory browser, in a real headless Chromium (as ``test_ui_browser``).

A person adds a memory from a form; the edit form's type, state and role are menus of what the
models allow, and it changes the due date, state, time and subject; the graph's labels fit (a
name is cut with an ellipsis under its node, whole in the tooltip) and the graph starts from a
list of the entities most memories mention; the latest changes show each memory's text; due
dates read as dates, not "00:00:00"; and there is no working-set page that cannot show anything.
The add form's screenshot goes to ``docs/ui-add.png`` (shown in the README).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import chromium, go, opened_ui, require_chromium, wait_for, wait_text

from memory.models import KNOWN_TYPES, STATES

DOCS = Path(__file__).resolve().parents[1] / "docs"
LONG_NAME = "The International Conference on Very Long Entity Names"

# Slow like test_ui_browser: a Chromium and a UI server per module, about a minute in all.
pytestmark = pytest.mark.slow

require_chromium()
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture
def ui(home, browser):
    with opened_ui(browser, home) as running:
        yield running


def options(driver, css: str) -> list[str]:
    return [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, f"{css} option")]


def set_value(driver, element_id: str, value: str) -> None:
    """A date or time input's value, as the picker sets it (typing into one depends on the locale)."""
    driver.execute_script(
        "const el = document.getElementById(arguments[0]); el.value = arguments[1];"
        "el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true}));",
        element_id,
        value,
    )


def test_add_a_memory_from_the_form(ui, browser, home):
    browser.find_element(By.ID, "nav-add").click()
    wait_for(browser, "#add-form")
    assert options(browser, "#add-type") == list(KNOWN_TYPES)
    assert browser.find_element(By.ID, "add-state").find_element(By.XPATH, "..").is_displayed() is False  # a note has no state
    browser.find_element(By.ID, "add-text").send_keys("Water the tomatoes on the balcony")
    Select(browser.find_element(By.ID, "add-type")).select_by_value("task")
    assert options(browser, "#add-state") == list(STATES["task"])
    Select(browser.find_element(By.ID, "add-state")).select_by_value("blocked")
    assert "work" in options(browser, "#add-role")
    Select(browser.find_element(By.ID, "add-role")).select_by_visible_text("new role…")
    browser.find_element(By.ID, "add-new-role").send_keys("garden")
    browser.find_element(By.ID, "add-tags").send_keys("plants, home")
    set_value(browser, "add-due-date", "2027-06-01")
    DOCS.mkdir(exist_ok=True)
    browser.save_screenshot(str(DOCS / "ui-add.png"))
    browser.find_element(By.ID, "add-save").click()
    wait_text(browser, "#memory-text", "Water the tomatoes on the balcony")
    wait_text(browser, "#notice", "Added.")
    fields = browser.find_element(By.ID, "fields").text
    assert "2027-06-01" in fields and "00:00" not in fields
    found = [m for m in home.cube("default").recent(3) if m.text == "Water the tomatoes on the balcony"]
    assert len(found) == 1
    m = found[0]
    assert (m.type, m.state, m.role, m.tags, m.due_at, m.client) == (
        "task",
        "blocked",
        "garden",
        ["plants", "home"],
        "2027-06-01T00:00:00Z",
        "memcube-ui",
    )


def test_a_bad_add_says_why_and_adds_nothing(ui, browser, home):
    before = home.cube("default").count({"status": "any"})
    go(browser, ui, "#/add", "#add-form")
    browser.find_element(By.ID, "add-text").send_keys("A task due on a day that does not exist")
    set_value(browser, "add-due-date", "")
    browser.execute_script("document.getElementById('add-due-date').type = 'text'")
    set_value(browser, "add-due-date", "2027-02-30")
    browser.find_element(By.ID, "add-save").click()
    wait_text(browser, "#notice", "due_at")
    assert "error" in browser.find_element(By.ID, "notice").get_attribute("class")
    assert browser.find_element(By.ID, "add-form").is_displayed()  # the form and what was typed stay
    assert home.cube("default").count({"status": "any"}) == before


def test_the_edit_form_changes_state_due_time_and_subject(ui, browser, home):
    task = ui.ids["Write the Apollo release notes"]
    go(browser, ui, f"#/memory/{task}", "#edit-form")
    assert browser.find_element(By.ID, "edit-type").tag_name == "select"
    assert options(browser, "#edit-type") == list(KNOWN_TYPES)
    assert options(browser, "#edit-state") == list(STATES["task"])
    assert options(browser, "#edit-role")[:3] == ["", "home", "work"]
    assert browser.find_element(By.ID, "edit-due-date").get_attribute("value") == "2026-01-05"
    assert browser.find_element(By.ID, "edit-due-time").get_attribute("value") == ""  # midnight: a date alone
    fields = browser.find_element(By.ID, "fields").text
    assert "2026-01-05" in fields and "00:00:00" not in fields
    Select(browser.find_element(By.ID, "edit-state")).select_by_value("in_progress")
    set_value(browser, "edit-due-date", "2027-01-10")
    set_value(browser, "edit-due-time", "15:30")
    set_value(browser, "edit-occurred-date", "2026-12-02")
    browser.find_element(By.ID, "edit-subject").send_keys("release notes")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, '#history tr.version[data-version="2"]')
    m = home.cube("default").get([task])[0]
    assert (m.state, m.due_at, m.occurred_at, m.subject) == (
        "in_progress",
        "2027-01-10T15:30:00Z",
        "2026-12-02T00:00:00Z",
        "release notes",
    )
    assert "2027-01-10 15:30" in browser.find_element(By.ID, "fields").text
    # A goal's states follow the type menu.
    Select(browser.find_element(By.ID, "edit-type")).select_by_value("goal")
    assert options(browser, "#edit-state") == list(STATES["goal"])


def test_the_graph_starts_from_a_list_and_its_labels_fit(ui, browser, home):
    c = home.cube("default")
    c.add(
        [
            {
                "text": "Bob gave a talk at the conference",
                "entities": ["Bob", LONG_NAME],
                "relations": [{"subject": "Bob", "predicate": "spoke_at", "object": LONG_NAME}],
            }
        ],
        client="t",
    )
    c.try_sync_graph()
    browser.find_element(By.CSS_SELECTOR, '#nav a[data-view="graph"]').click()
    wait_for(browser, "#top-entities a")
    listed = [a.get_attribute("data-entity") for a in browser.find_elements(By.CSS_SELECTOR, "#top-entities a")]
    assert listed[0] == "Bob" and {"Alice", "Carol", LONG_NAME} <= set(listed)
    browser.find_element(By.CSS_SELECTOR, '#top-entities a[data-entity="Bob"]').click()
    wait_text(browser, "#graph-entity", "Bob")
    wait_for(browser, f'#graph g.node[data-entity="{LONG_NAME}"]')
    nodes = browser.execute_script(
        """return [...document.querySelectorAll('#graph g.node')].map((g) => {
             const c = g.querySelector('circle'), t = g.querySelector('text').getBBox();
             return {name: g.dataset.entity, title: g.querySelector('title').textContent, label: g.querySelector('text').textContent,
                     cx: +c.getAttribute('cx'), cy: +c.getAttribute('cy'), r: +c.getAttribute('r'),
                     x: t.x, y: t.y, w: t.width, h: t.height};
           });"""
    )
    assert len(nodes) >= 4
    box = browser.execute_script("return document.getElementById('graph').viewBox.baseVal; ")
    for n in nodes:
        inside = n["x"] >= n["cx"] - n["r"] and n["x"] + n["w"] <= n["cx"] + n["r"] and n["h"] <= 2 * n["r"]
        below = n["y"] >= n["cy"] + n["r"] - 0.5
        assert inside or below, n  # a label never spills over its circle's edge
        assert n["y"] + n["h"] <= box["height"] and n["x"] >= 0 and n["x"] + n["w"] <= box["width"], n
        assert n["name"] in n["title"], n  # the whole name is the tooltip
    long = next(n for n in nodes if n["name"] == LONG_NAME)
    assert long["label"].endswith("…") and LONG_NAME.startswith(long["label"][:-1]) and long["w"] < 180


def test_latest_changes_show_the_memory_and_due_dates_read_as_dates(ui, browser, home):
    report = ui.ids["The quarterly report is due every March"]
    home.cube("default").update(report, {"importance": 0.8}, client="t")
    browser.find_element(By.CSS_SELECTOR, '#nav a[data-view="activity"]').click()
    wait_for(browser, "#recent tbody tr")
    first = browser.find_element(By.CSS_SELECTOR, "#recent tbody tr")
    link = first.find_element(By.CSS_SELECTOR, "td.change-memory a")
    assert link.text == "The quarterly report is due every March"
    assert link.get_attribute("href").endswith(f"#/memory/{report}")
    assert report not in first.text  # the text, not the id
    assert ":00Z" not in browser.find_element(By.ID, "recent").text
    go(browser, ui, "#/board", ".task .due")
    dues = [d.text for d in browser.find_elements(By.CSS_SELECTOR, ".task .due")]
    assert "due 2099-03-01" in dues and all("00:00" not in d for d in dues), dues


def test_there_is_no_working_set_dead_end(ui, browser):
    links = [a.get_attribute("data-view") for a in browser.find_elements(By.CSS_SELECTOR, "#nav a")]
    assert "working-set" not in links and "add" in links
    go(browser, ui, "#/working-set", "#memory-list")  # an old bookmark lands on the memories


# Clearing optional fields: the "clear" buttons, "no role" and an emptied subject box.
def labels(driver) -> list[str]:
    return [dt.text for dt in driver.find_elements(By.CSS_SELECTOR, "#fields dt")]


def value(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).get_attribute("value")


def test_the_edit_form_clears_a_due_date_a_role_a_time_and_a_subject(ui, browser, home):
    cube = home.cube("default")
    task = ui.ids["Write the Apollo release notes"]  # due 2026-01-05, role work
    go(browser, ui, f"#/memory/{task}", "#edit-form")
    assert value(browser, "edit-due-date") == "2026-01-05" and "due" in labels(browser)
    browser.find_element(By.ID, "edit-due-clear").click()
    assert value(browser, "edit-due-date") == "" and value(browser, "edit-due-time") == ""
    Select(browser.find_element(By.ID, "edit-role")).select_by_visible_text("no role")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, '#history tr.version[data-version="2"]')
    wait_text(browser, "#notice", "Saved")
    m = cube.get([task])[0]
    assert (m.due_at, m.role, m.state, m.version) == (None, None, "todo", 2)
    assert "due" not in labels(browser) and "role" not in labels(browser)
    assert value(browser, "edit-due-date") == ""
    changes = browser.find_element(By.CSS_SELECTOR, '#history tr.version[data-version="2"]').text
    assert "due_at" in changes and "2026-01-05" in changes and "(none)" in changes and "role" in changes

    dinner = ui.ids["Dinner with Carol and Bob at the harbour"]  # happened 2026-11-20 19:00
    go(browser, ui, f"#/memory/{dinner}", "#edit-form")
    assert value(browser, "edit-occurred-date") == "2026-11-20"
    browser.find_element(By.ID, "edit-occurred-clear").click()
    browser.find_element(By.ID, "save").click()
    wait_for(browser, '#history tr.version[data-version="2"]')
    assert cube.get([dinner])[0].occurred_at is None
    assert "occurred" not in labels(browser) and value(browser, "edit-occurred-date") == ""

    tea = ui.ids["Alice prefers tea over coffee in the morning"]  # subject "morning drink"
    go(browser, ui, f"#/memory/{tea}", "#edit-form")
    browser.find_element(By.ID, "edit-subject").clear()
    browser.find_element(By.ID, "save").click()
    wait_for(browser, '#history tr.version[data-version="2"]')
    m = cube.get([tea])[0]
    assert (m.subject, m.role) == (None, "home")  # only the emptied field is cleared
    assert "subject" not in labels(browser) and value(browser, "edit-subject") == ""
