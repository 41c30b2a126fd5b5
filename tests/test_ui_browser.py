"""``segql ui`` in a real browser: Playwright drives Debian's Chromium against a server
started here with ``segql ui --port 0``.

Each page opens with its script running and no console error; a typo in the builder shows
the CLI's suggestion, taking it gives the count ``segql preview`` prints, saving lists the
new segment; excluding a member makes the next run's history say ``manual``; on a phone-
sized window the overview and a segment page do not overflow sideways. The tests skip when
Chromium or Playwright is missing, except in CI (``CI=true``), where they fail. Set
``SEGQL_UPDATE_DOCS=1`` to rewrite the screenshots in ``docs/images/``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.engines import in_ci
from tests.support.ui import EVENT, make_ui_project

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
START_DEADLINE = 60.0


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def segql(folder: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "segql.cli", "--project", str(folder), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ui_project(tmp_path_factory.mktemp("ui_browser") / "demo")


@pytest.fixture(scope="module")
def server(demo: Path) -> Iterator[str]:
    """``segql ui --port 0`` in its own process; the address it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "segql.cli", "--project", str(demo), "ui", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in process.stdout or ()], daemon=True
    ).start()
    deadline = time.monotonic() + START_DEADLINE
    address = None
    seen = []
    while address is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if line.strip().startswith("http://127.0.0.1:"):
            address = line.strip()
    try:
        assert address is not None, f"segql ui printed no address: {''.join(seen)}"
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing (Debian's chromium package; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Tab:
    """A page of one browser context, logged in, that records console errors."""

    def __init__(self, browser: Any, address: str, viewport: dict[str, int]):
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.base = address.split("/?")[0]
        self.page.goto(address)  # the token once; a cookie from then on
        self.page.wait_for_selector("body[data-ready=true]")

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path)
        self.page.wait_for_selector("body[data-ready=true]")
        return self.page

    def shot(self, name: str, tmp_path: Path, full_page: bool = True) -> Path:
        folder = DOCS_IMAGES if os.environ.get("SEGQL_UPDATE_DOCS") == "1" else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"ui-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def tab(browser: Any, server: str) -> Iterator[Tab]:
    opened = Tab(browser, server, DESKTOP)
    yield opened
    opened.context.close()


def test_each_page_opens_with_its_script_and_no_console_error(tab: Tab, tmp_path: Path) -> None:
    page = tab.open("/")
    assert page.locator('[data-role="segment-row"]').count() >= 9
    tab.shot("overview", tmp_path)
    page.fill('[data-role="search"]', "trial")  # filtered as typed, without a reload
    page.wait_for_function("document.querySelector('[data-role=shown]').textContent === '2'")
    page = tab.open("/segments/active_people?col=country&col=lifetime_value")
    assert page.locator('[data-role="member"]').count() == 50
    assert page.locator('svg[data-role="size-chart"]').count() == 1
    tab.shot("segment", tmp_path)
    page = tab.open("/people/1?explain=marked")
    clauses = page.locator('[data-role="explain"] tbody tr')
    assert clauses.count() == 1 and EVENT in clauses.inner_text()  # shown as text, not run
    tab.shot("person", tmp_path)
    page = tab.open(
        "/builder?condition=status%20%3D%20%27paid%27%20and%20did%20login%20within%2030%20days"
    )
    assert page.locator('[data-role="count"]').count() == 1
    tab.shot("builder", tmp_path)
    assert tab.errors == []
    assert page.evaluate("typeof window.alert") == "function"  # nothing from the data ran


def _check_of(page: Any, condition: str) -> Any:
    selector = f'[data-role="check"][data-condition={json.dumps(condition)}]'
    page.wait_for_selector(selector)
    return page.locator(selector)


def test_builder_suggests_counts_like_preview_and_saves(tab: Tab, demo: Path) -> None:
    expected = json.loads(segql(demo, "preview", "status = 'paid'", "--format", "json"))[0]
    page = tab.open("/builder")
    page.locator('[data-role="condition"]').press_sequentially("staus = 'paid'")
    check = _check_of(page, "staus = 'paid'")
    assert "did you mean 'status'?" in check.locator('[data-role="error"]').inner_text()
    assert "^^^^^" in check.locator('[data-role="error"]').inner_text()  # the caret
    check.locator('[data-role="suggestion"]').click()  # fix it as suggested
    fixed = _check_of(page, "status = 'paid'")
    assert fixed.get_attribute("data-ok") == "true"
    assert (
        int(fixed.locator('[data-role="count"]').inner_text().replace(",", ""))
        == (expected["matching"])
    )
    page.fill('[data-role="save-name"]', "from_browser")
    page.fill('[data-role="save-title"]', "Saved from the browser")
    page.click('[data-role="save-form"] button')
    page.wait_for_selector('[data-role="saved-link"]')
    assert (demo / "segments" / "from_browser.segql").read_text(encoding="utf-8") == (
        "segment from_browser\n  title \"Saved from the browser\"\n  where status = 'paid'\n"
    )
    page = tab.open("/")
    row = page.locator('[data-role="segment-row"][data-segment="from_browser"]')
    assert row.locator('[data-role="title"]').inner_text() == "Saved from the browser"
    assert tab.errors == []


def test_exclude_then_the_next_run_says_manual(tab: Tab, demo: Path) -> None:
    page = tab.open("/segments/high_ltv")
    first = page.locator('[data-action="pick-exclude"]').first
    person = first.get_attribute("data-person")
    first.click()
    assert page.input_value('[data-role="exclude-person"]') == person
    page.fill('[data-role="exclude-reason"]', "asked to be left out")
    page.click('[data-role="exclude-form"] button')
    page.wait_for_selector('[data-role="exclude-message"].ok')
    segql(demo, "run", "--as-of", "2026-11-02", "--quiet")  # the next run
    page = tab.open(f"/people/{person}")
    rows = page.locator('[data-role="person-history"] tbody tr')
    last = [rows.nth(i).inner_text().split("\t") for i in range(rows.count())]
    assert ["high_ltv", "exit", "manual"] in [r[2:5] for r in last]
    assert tab.errors == []


def test_phone_sized_window_keeps_overview_and_segment_in_width(
    browser: Any, server: str, tmp_path: Path
) -> None:
    tab = Tab(browser, server, PHONE)
    try:
        for path, name in (("/", "overview-phone"), ("/segments/active_people", "segment-phone")):
            page = tab.open(path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} is {width}px wide on a phone"
            tab.shot(name, tmp_path, full_page=False)
        assert tab.errors == []
    finally:
        tab.context.close()
