"""The memory browser (``memcube ui``) at scale: first paint of the memory list, a search round trip, deep paging.

    uv run python bench/ui.py [--sizes 10000,50000] [--runs 15]
    uv run python bench/ui.py --quick   # 1,000 and 5,000 memories, 7 runs (CI's check that it runs)

For each size N, a scratch home gets N synthetic memories (``bench/foundation.make_memories``,
added through ``MemCube.add`` in batches of 500), then the real UI server runs on loopback
and is measured two ways:

1. In headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium),
   when both are installed: *first paint*, from navigation start to the moment the first
   page of the memory list is in the DOM (the page's own ``memcube:list-painted`` mark),
   each run a fresh load of the launch address; and *search round trip*, from submitting
   the search form to the hits being rendered (hybrid search, a different query each run).
2. Over HTTP alone (the JSON API, token header): the first page of the list, a page deep in
   the list (cursor after 80 % of the memories), and a hybrid search.

Medians (p50) and p95 go to stdout, progress to stderr. The last line is
``RESULT n=... paint_p50_ms=... search_rt_p50_ms=... api_page_p50_ms=... api_deep_page_p50_ms=... api_search_p50_ms=...``
(one ``key@N`` per size).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from foundation import make_memories, make_queries
from ui_support import running_ui

from memory import MemoryHome

BATCH = 500


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fill(home: MemoryHome, n: int) -> float:
    cube = home.cube("default", create=True)
    items = make_memories(n)
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        cube.add(items[start : start + BATCH], client="bench")
        if (start // BATCH) % 10 == 0:
            log(f"  added {start + BATCH}/{n} ({time.perf_counter() - started:.0f} s)")
    return time.perf_counter() - started


def timed_get(base: str, token: str, path: str) -> tuple[float, Any]:
    request = urllib.request.Request(base + path, headers={"X-MemCube-Token": token})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        body = json.loads(response.read())
    return (time.perf_counter() - started) * 1000, body


def bench_api(ui: Any, n: int, runs: int, queries: list[str]) -> dict[str, list[float]]:
    from urllib.parse import quote

    first, deep, search = [], [], []
    # The cursor 80 % of the way down: walk there once with big pages.
    cursor, seen = "", 0
    while seen < int(n * 0.8):
        _, page = timed_get(ui.base, ui.token, f"/api/cubes/default/memories?limit=200&cursor={cursor}")
        seen += len(page["memories"])
        cursor = page["next"]
    timed_get(ui.base, ui.token, f"/api/cubes/default/search?q={quote(queries[0])}")  # the model loads here
    for i in range(runs):
        first.append(timed_get(ui.base, ui.token, "/api/cubes/default/memories?limit=50")[0])
        deep.append(timed_get(ui.base, ui.token, f"/api/cubes/default/memories?limit=50&cursor={cursor}")[0])
        search.append(timed_get(ui.base, ui.token, f"/api/cubes/default/search?q={quote(queries[(i + 1) % len(queries)])}")[0])
    return {"api_page": first, "api_deep_page": deep, "api_search": search}


def browser() -> Any | None:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        log("chromium or chromedriver missing: browser figures skipped")
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


PAINTED = """
const done = arguments[0];
(function check() {
  const mark = performance.getEntriesByName('memcube:list-painted')[0];
  if (mark) done(mark.startTime); else setTimeout(check, 5);
})();
"""

SEARCH = """
const [query, done] = arguments;
const count = document.getElementById('count');
const started = performance.now();
const observer = new MutationObserver(() => {
  if (count.textContent.includes(query)) { observer.disconnect(); done(performance.now() - started); }
});
observer.observe(count, { childList: true, characterData: true, subtree: true });
document.getElementById('search').value = query;
document.getElementById('search-form').requestSubmit();
"""


def bench_browser(driver: Any, ui: Any, runs: int, queries: list[str]) -> dict[str, list[float]]:
    driver.set_script_timeout(120)
    paint, search = [], []
    for _ in range(runs + 1):
        driver.get("about:blank")
        driver.get(ui.url)
        paint.append(driver.execute_async_script(PAINTED))
    paint = paint[1:]  # the first load warms the server's caches and the browser's
    driver.execute_async_script(SEARCH, queries[0])  # warm-up: the model loads
    for i in range(runs):
        search.append(driver.execute_async_script(SEARCH, queries[(i + 1) % len(queries)]))
    return {"paint": paint, "search_rt": search}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000", help="comma-separated cube sizes")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="1,000 and 5,000 memories, 7 runs")
    args = parser.parse_args()
    sizes = [1000, 5000] if args.quick else [int(s) for s in args.sizes.split(",")]
    runs = 7 if args.quick else args.runs
    queries = [q for q in make_queries(runs + 5) if '"' not in q]
    driver = browser()
    result: dict[str, str] = {}
    try:
        for n in sizes:
            scratch = Path(tempfile.mkdtemp(prefix="memcube-bench-ui-"))
            home = MemoryHome(scratch)
            try:
                log(f"== {n} memories")
                seconds = fill(home, n)
                print(f"{n} memories added in {seconds:.0f} s ({n / seconds:.0f}/s)")
                with running_ui(home) as ui:
                    figures = bench_api(ui, n, runs, queries)
                    if driver is not None:
                        figures.update(bench_browser(driver, ui, runs, queries))
                for key, values in figures.items():
                    print(
                        f"  {key:14s} p50 {statistics.median(values):8.1f} ms   p95 {pct(values, 0.95):8.1f} ms   ({len(values)} runs)"
                    )
                    result[f"{key}_p50_ms@{n}"] = f"{statistics.median(values):.1f}"
            finally:
                home.close()
                shutil.rmtree(scratch, ignore_errors=True)
    finally:
        if driver is not None:
            driver.quit()
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
