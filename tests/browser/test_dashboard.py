"""The analytics dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright): the page loads without console errors, the KPI cards show the numbers of a known
feed, a new order appears within seconds, and the language switch works. Screenshots go to
target/screenshots/ (git-ignored; CI keeps them as artifacts).

Needs a Kafka-protocol broker (ORDERFLOW_BROKERS) and the debug binaries (cargo build);
scripts/browser-test.sh sets everything up. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("ORDERFLOW_BIN_DIR", ROOT / "target" / "debug"))
SHOTS = ROOT / "target" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DAYS, ORDERS_PER_DAY, SEED = 35, 16, 11


def yuan(fen: int) -> str:
    """Money as the page shows it: ¥1,234.50."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


@pytest.fixture(scope="module")
def shop():
    brokers = os.environ.get("ORDERFLOW_BROKERS")
    if not brokers:
        brokers = subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "ensure"], check=True,
                                 capture_output=True, text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="orderflow-browser-"))
    clock = work / "clock"
    clock.write_text("2026-11-25T00:00:00Z")
    config = work / "analytics.toml"
    config.write_text(f'[analytics]\nlisten = "127.0.0.1:0"\nweb-dir = "{ROOT / "web" / "dashboard"}"\n')
    env = dict(os.environ, ORDERFLOW_BROKERS=brokers,
               ORDERFLOW_TOPIC_PREFIX=f"t.browser.{os.getpid()}.{uuid.uuid4().hex[:6]}.",
               ORDERFLOW_PARTITIONS="3", ORDERFLOW_DATA_DIR=str(work), ORDERFLOW_CLOCK_FILE=str(clock),
               ORDERFLOW_CONFIG=str(config), RUST_LOG="info")
    env.pop("ORDERFLOW_RULES", None)
    run = lambda *args: subprocess.run(args, check=True, env=env, capture_output=True, text=True)  # noqa: E731
    run(str(BIN / "orderflow"), "topics", "create")
    feed, expected = work / "feed.jsonl", work / "expected.json"
    run(str(BIN / "orderflow-analytics"), "generate", "--log-feed", str(feed), "--expected", str(expected),
        "--days", str(DAYS), "--orders-per-day", str(ORDERS_PER_DAY), "--seed", str(SEED), "--tag", "BR")
    log = open(work / "analytics.log", "w", encoding="utf-8")
    process = subprocess.Popen([str(BIN / "orderflow-analytics")], env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = None
    deadline = time.monotonic() + 30
    while url is None:
        assert process.poll() is None, (work / "analytics.log").read_text()
        assert time.monotonic() < deadline, "the dashboard did not start within 30 s"
        found = re.search(r"^dashboard: (\S+)$", (work / "analytics.log").read_text(), re.M)
        url = found.group(1) if found else None
        time.sleep(0.1)
    run(str(BIN / "orderflow"), "feed", str(feed))
    yield {"url": url, "env": env, "work": work, "expected": json.loads(expected.read_text()), "bin": BIN}
    process.terminate()
    process.wait(timeout=30)
    log.close()


def new_order_line(order: str, day: str) -> str:
    """A log record of one more order placed at noon of `day` (Shanghai), as the intake writes it."""
    at = datetime.fromisoformat(f"{day}T12:00:00+08:00").astimezone(timezone.utc)
    event = {
        "schema_version": 1, "event_id": uuid.uuid4().hex, "key": f"tmall:{order}",
        "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": {"origin": "orderflow.in.orders", "channel": "tmall"},
        "body": {"type": "order_placed", "buyer_id": "browser-buyer", "phone": "13912345678",
                 "address": {"province": "浙江省", "city": "杭州市", "district": "西湖区", "detail": "1 号"},
                 "lines": [{"sku": "SKU-000", "category": "baby", "qty": 1, "unit_price_fen": 12345}],
                 "discount_fen": 0, "shipping_fen": 0, "total_fen": 12345, "payment_method": "alipay"},
    }
    return json.dumps({"topic": "order-events", "key": f"tmall:{order}", "value": event}, ensure_ascii=False)


def card(page, key: str):
    return page.locator(f'.card[data-kpi="{key}"]')


def test_the_dashboard_shows_the_feed_live_in_both_languages(shop):
    SHOTS.mkdir(parents=True, exist_ok=True)
    expected = shop["expected"]["last_30_days"]
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        started = time.monotonic()
        page.goto(shop["url"])
        # The cards show the known feed (the last 30 days of its history).
        page.wait_for_function(
            "n => { const c = document.querySelector('.card[data-kpi=\"valid_orders\"]'); return c && c.dataset.value === String(n); }",
            arg=expected["valid_orders"], timeout=60_000)
        loaded = time.monotonic() - started
        assert card(page, "valid_orders").locator(".label").inner_text() == "有效订单数"
        assert card(page, "gmv").locator(".value").inner_text() == yuan(expected["gmv_fen"])
        assert card(page, "aov").locator(".value").inner_text() == yuan(expected["aov_fen"])
        assert card(page, "new_customers").get_attribute("data-value") == str(expected["new_customers"])
        assert card(page, "orders").get_attribute("data-value") == str(expected["orders"])
        returned = expected["returned"] / expected["shipped"]
        assert card(page, "return_rate").locator(".value").inner_text() == f"{returned * 100:.1f}%"
        repurchase = expected["repeat_buyers"] / expected["buyers"]
        assert card(page, "repurchase_rate").locator(".value").inner_text() == f"{repurchase * 100:.1f}%"
        assert page.locator("#zone").inner_text() == "Asia/Shanghai"
        # Charts drew (ECharts renders into a canvas).
        page.wait_for_function("document.querySelectorAll('#trend-chart canvas, #funnel-chart canvas').length >= 2",
                               timeout=10_000)
        page.screenshot(path=str(SHOTS / "dashboard-zh.png"), full_page=True)
        page.screenshot(path=str(SHOTS / "dashboard-zh-top.png"))  # the first screen (docs/dashboard.png)

        # A new order reaches the page within seconds (server-sent events, no reload).
        line = new_order_line(f"BR-NEW-{uuid.uuid4().hex[:8]}", shop["expected"]["last_day"])
        feed = shop["work"] / "new-order.jsonl"
        feed.write_text(line + "\n", encoding="utf-8")
        fed_at = time.monotonic()
        subprocess.run([str(shop["bin"] / "orderflow"), "feed", str(feed)], check=True, env=shop["env"],
                       capture_output=True)
        page.wait_for_function(
            "n => document.querySelector('.card[data-kpi=\"valid_orders\"]').dataset.value === String(n)",
            arg=expected["valid_orders"] + 1, timeout=10_000)
        new_order_seconds = time.monotonic() - fed_at

        # The language switch.
        page.click("#lang")
        assert page.locator("h1").inner_text() == "Order analytics"
        assert card(page, "valid_orders").locator(".label").inner_text() == "Valid orders"
        assert card(page, "gmv").locator(".value").inner_text().startswith("¥")
        page.screenshot(path=str(SHOTS / "dashboard-en.png"), full_page=True)
        page.click("#lang")
        assert page.locator("h1").inner_text() == "订单分析看板"

        # Every card's JSON endpoint answers, and the CSV export is served.
        for endpoint in ["overview", "trend", "funnel", "stuck", "exceptions", "sync-latency", "returns",
                         "inventory", "rfm", "forecast", "digest", "status"]:
            response = page.request.get(f"{shop['url']}api/{endpoint}")
            assert response.ok, endpoint
        csv = page.request.get(f"{shop['url']}api/rfm/customers.csv")
        assert csv.ok and "重要价值客户" in csv.text()
        browser.close()
    (SHOTS / "browser-metrics.json").write_text(json.dumps(
        {"page_load_to_cards_seconds": round(loaded, 3), "new_order_to_card_seconds": round(new_order_seconds, 3)}))
    print(f"page loaded with its cards in {loaded:.2f}s; a new order showed in {new_order_seconds:.2f}s")
    assert not errors, f"console errors: {errors}"
