"""Page load time of the analytics dashboard: opens URL in Debian's headless Chromium RUNS
times (a fresh page each time, cache disabled) and reports the time from navigation to the KPI
cards being filled (body[data-ready]) and to the last chart drawn.

usage: .tools/browser-venv/bin/python tests/browser/page_load.py http://127.0.0.1:8090/ [RUNS]
"""

import json
import os
import statistics
import sys
import time

from playwright.sync_api import sync_playwright

url = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
ready, charts = [], []
with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                         headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        started = time.monotonic()
        page.goto(url)
        page.wait_for_function("document.body.dataset.ready === '1'", timeout=120_000)
        ready.append(time.monotonic() - started)
        page.wait_for_function("document.querySelectorAll('canvas').length >= 4", timeout=120_000)
        charts.append(time.monotonic() - started)
        context.close()
    browser.close()
print(json.dumps({"runs": runs, "cards_ready_s": {"median": round(statistics.median(ready), 3), "max": round(max(ready), 3)},
                  "charts_drawn_s": {"median": round(statistics.median(charts), 3), "max": round(max(charts), 3)}}))
