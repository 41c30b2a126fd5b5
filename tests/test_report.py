"""``segql report``: one offline HTML page whose figures equal segql's own tables.

The demo project runs at several as-of times; the page is checked as written and as a real
headless Chromium renders it (the DOM after its script ran, and a screenshot). The expected
figures are counted here straight from segql's tables with hand-written SQL. Chromium tests
skip when ``/usr/bin/chromium`` is missing, except in CI (``CI=true``), where they fail.
Set ``SEGQL_UPDATE_DOCS=1`` to rewrite ``docs/report.png`` from the demo's screenshot.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import pytest

from segql.downstream.report import OVERLAP_LIMIT, build_report, collect_report, write_report
from segql.engines import connect
from segql.errors import SegqlError
from segql.project import load_project
from segql.runs.runner import Runner
from segql.starters.demo import init_project
from tests.support.engines import in_ci
from tests.support.runtime import RuntimeProject
from tests.support.scenario import event, make_tables, person

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "report.png"
# The first run is before the period, the second is its starting point, the rest are in it.
AS_OFS = ("2026-09-10", "2026-09-24", "2026-10-04", "2026-10-11", "2026-10-18", "2026-11-01")
DAYS = 30
SINCE = "2026-10-02 00:00:00"  # the last as-of minus DAYS


# --- projects ------------------------------------------------------------------------------


def run_project(folder: Path, as_ofs: tuple[str, ...]) -> None:
    project = load_project(folder)
    warehouse = connect(project.config)
    try:
        for as_of in as_ofs:
            Runner(project, warehouse).run(None, datetime.fromisoformat(as_of))
    finally:
        warehouse.close()


def report_of(folder: Path, days: int = DAYS) -> str:
    project = load_project(folder)
    warehouse = connect(project.config, read_only=True)
    try:
        return build_report(warehouse, project, days)
    finally:
        warehouse.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report") / "demo"
    init_project(folder, people=2000, anchor=date(2026, 11, 1))
    run_project(folder, AS_OFS)
    return folder


@pytest.fixture(scope="module")
def demo_page(demo: Path) -> Path:
    project = load_project(demo)
    warehouse = connect(project.config, read_only=True)
    try:
        return write_report(warehouse, project, DAYS, demo / "report.html")
    finally:
        warehouse.close()


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 segments of different sizes, run once."""
    folder = tmp_path_factory.mktemp("report") / "many"
    init_project(folder, people=500, anchor=date(2026, 11, 1))
    for old in (folder / "segments").glob("*.segql"):
        old.unlink()
    rules = "\n".join(
        f'segment seg_{i:03d}\n  title "Segment number {i}"\n'
        f"  where count(any within {(7, 14, 30, 90)[i % 4]} days) >= {1 + i // 4}\n"
        for i in range(200)
    )
    (folder / "segments" / "many.segql").write_text(rules)
    run_project(folder, ("2026-11-01",))
    return folder


def query(folder: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


# --- reading the page ----------------------------------------------------------------------


class Page(HTMLParser):
    """Elements of interest, each with the segment card it sits in and its text."""

    VOID = frozenset({"meta", "input", "br", "img", "hr", "link", "source", "wbr"})

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[dict[str, Any]] = []
        self.elements: list[dict[str, Any]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        card = next((e["attrs"]["data-segment"] for e in reversed(self.stack)
                     if "data-segment" in e["attrs"]), values.get("data-segment"))  # fmt: skip
        element = {"tag": tag, "attrs": values, "card": card, "text": []}
        self.elements.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element["text"].append(data)

    def find(self, **wanted: str) -> list[dict[str, Any]]:
        """Elements whose attributes have these values (``data_role`` for ``data-role``)."""
        return [
            e
            for e in self.elements
            if all(
                (e["tag"] if k == "tag" else e["attrs"].get(k.replace("_", "-"))) == v
                for k, v in wanted.items()
            )
        ]

    def with_attr(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.elements if name in e["attrs"]]

    def text(self, element: dict[str, Any]) -> str:
        return "".join(element["text"]).strip()


def number(text: str) -> int:
    return int(text.replace(",", "").replace("+", "").replace("\u2212", ""))


def expected_figures(folder: Path) -> dict[str, Any]:
    """The figures the page must show, counted from segql's tables by hand-written SQL."""
    sizes = dict(query(folder, "SELECT segment, count(*) FROM segql.segql_members GROUP BY 1"))
    moves: dict[tuple[str, str], int] = defaultdict(int)
    for segment, change, count in query(
        folder,
        "SELECT segment, change, count(*) FROM segql.segql_history "
        f"WHERE as_of > TIMESTAMP '{SINCE}' GROUP BY 1, 2",
    ):
        moves[(segment, change)] = count
    per_run: dict[tuple[str, str, int], int] = defaultdict(int)
    for segment, change, seq, count in query(
        folder,
        "SELECT segment, change, commit_seq, count(*) FROM segql.segql_history "
        f"WHERE as_of > TIMESTAMP '{SINCE}' GROUP BY 1, 2, 3",
    ):
        per_run[(segment, change, seq)] = count
    runs = query(
        folder,
        "SELECT commit_seq, as_of FROM segql.segql_runs WHERE status = 'committed' ORDER BY 1",
    )
    # Size after run k: everyone who entered at or before k minus everyone who exited.
    size_after = {
        (segment, seq): int(size)
        for segment, seq, size in query(
            folder,
            "SELECT s.segment, r.commit_seq, "
            "sum(CASE WHEN h.commit_seq <= r.commit_seq THEN "
            "CASE h.change WHEN 'enter' THEN 1 ELSE -1 END ELSE 0 END) "
            "FROM (SELECT DISTINCT segment FROM segql.segql_history) s "
            "CROSS JOIN segql.segql_runs r "
            "LEFT JOIN segql.segql_history h ON h.segment = s.segment GROUP BY 1, 2",
        )
    }
    reasons: dict[str, dict[str, int]] = defaultdict(dict)
    for segment, reason, count in query(
        folder,
        "SELECT segment, reason, count(*) FROM segql.segql_history "
        f"WHERE change = 'exit' AND as_of > TIMESTAMP '{SINCE}' GROUP BY 1, 2",
    ):
        reasons[segment][reason] = count
    overlap = {
        (a, b): count
        for a, b, count in query(
            folder,
            "SELECT a.segment, b.segment, count(*) FROM segql.segql_members a "
            "JOIN segql.segql_members b ON a.person_id = b.person_id GROUP BY 1, 2",
        )
    }
    return {
        "sizes": sizes,
        "moves": moves,
        "per_run": per_run,
        "runs": runs,
        "size_after": size_after,
        "reasons": reasons,
        "overlap": overlap,
    }


def check_figures(page: Page, folder: Path) -> None:
    """Every figure on the page equals the tables'."""
    want = expected_figures(folder)
    segments = load_project(folder).segment_names
    cards = {e["attrs"]["data-segment"] for e in page.find(tag="article")}
    assert cards == set(segments)
    period_seqs = {seq for seq, as_of in want["runs"] if as_of > datetime.fromisoformat(SINCE)}
    start_seq = max(seq for seq, as_of in want["runs"] if as_of <= datetime.fromisoformat(SINCE))
    total_entered = total_exited = 0
    for name in segments:
        figures = {
            e["attrs"]["data-figure"]: page.text(e)
            for e in page.with_attr("data-figure")
            if e["card"] == name
        }
        size = want["sizes"].get(name, 0)
        entered, exited = want["moves"][(name, "enter")], want["moves"][(name, "exit")]
        total_entered, total_exited = total_entered + entered, total_exited + exited
        assert number(figures["size"]) == size, name
        assert number(figures["entered"]) == entered, name
        assert number(figures["exited"]) == exited, name
        start = size - entered + exited
        if start:
            growth = 100.0 * (size - start) / start
            shown = "0.0%" if growth == 0 else f"{growth:+.1f}%"
            assert figures["growth"].replace("\u2212", "-") == shown, name
        for role in ("size-chart", "moves-chart"):
            assert [e for e in page.find(data_role=role) if e["card"] == name], (name, role)
        points = {
            int(e["attrs"]["data-seq"]): int(e["attrs"]["data-value"])
            for e in page.find(data_role="size-point")
            if e["card"] == name
        }
        assert set(points) == period_seqs | {start_seq}, name
        assert points == {seq: want["size_after"][(name, seq)] for seq in points}, name
        assert points[max(points)] == size
        for role, change in (("entered", "enter"), ("exited", "exit")):
            bars = {
                int(e["attrs"]["data-seq"]): int(e["attrs"]["data-value"])
                for e in page.find(tag="rect", data_role=role)
                if e["card"] == name
            }
            assert bars == {seq: want["per_run"][(name, change, seq)] for seq in period_seqs}
        reasons = {
            e["attrs"]["data-reason"]: int(e["attrs"]["data-value"])
            for e in page.find(data_role="reason")
            if e["card"] == name
        }
        assert reasons == want["reasons"].get(name, {}), name
        has_reasons = [e for e in page.find(data_role="exit-reasons") if e["card"] == name]
        assert bool(has_reasons) == bool(exited), name
    kpis = {e["attrs"]["data-figure"]: page.text(e) for e in page.find(tag="div")
            if "data-figure" in e["attrs"] and e["card"] is None}  # fmt: skip
    assert number(kpis["entered"]) == total_entered
    assert number(kpis["exited"]) == total_exited
    assert number(kpis["runs"]) == len(want["runs"])
    cells = {
        (e["attrs"]["data-a"], e["attrs"]["data-b"]): int(e["attrs"]["data-count"])
        for e in page.find(data_role="overlap-cell")
    }
    assert len(page.find(data_role="overlap-heatmap")) == 1
    names = {a for a, _ in cells}
    assert names == {s for s, n in want["sizes"].items() if n}
    assert cells == {(a, b): want["overlap"].get((a, b), 0) for a in names for b in names}
    runs = page.find(data_role="run")
    assert len(runs) == len(AS_OFS) and {r["attrs"]["data-status"] for r in runs} == {"committed"}


# --- the page as written -------------------------------------------------------------------


def test_figures_on_the_page_equal_the_tables(demo: Path, demo_page: Path) -> None:
    check_figures(Page(demo_page.read_text(encoding="utf-8")), demo)


def test_page_is_offline(demo_page: Path) -> None:
    text = demo_page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    page = Page(text)
    assert not [e for e in page.elements if e["tag"] in ("link", "img", "iframe", "object")]
    assert not [e for e in page.elements if "src" in e["attrs"] or "@import" in page.text(e)]


def test_no_member_ids_and_every_text_escaped(demo: Path, tmp_path: Path) -> None:
    """Member ids made unmistakable in a copy of the tables never reach the page; a title
    and a run error with markup in them are shown as text."""
    copy = tmp_path / "copy"
    shutil.copytree(demo, copy)
    connection = duckdb.connect(str(copy / "warehouse.duckdb"))
    for table in ("segql_members", "segql_history"):
        connection.execute(f"UPDATE segql.{table} SET person_id = 'pid-zq-' || person_id")
    connection.execute(
        "INSERT INTO segql.segql_runs (run_id, as_of, started_at, finished_at, status, error) "
        "VALUES ('r-failed', TIMESTAMP '2026-11-01', TIMESTAMP '2026-11-02', "
        "TIMESTAMP '2026-11-02 00:00:05', 'failed', '<script>boom()</script>')"
    )
    connection.close()
    (copy / "segments" / "odd.segql").write_text(
        "segment odd_title\n  title \"<b>Bold</b> & 'quoted'\"\n  where status = 'paid'\n"
    )
    text = report_of(copy)
    assert "pid-zq-" not in text
    assert "<b>Bold</b>" not in text and "&lt;b&gt;Bold&lt;/b&gt; &amp; &#x27;quoted&#x27;" in text
    assert "<script>boom()" not in text and "&lt;script&gt;boom()&lt;/script&gt;" in text
    page = Page(text)
    failed = page.find(data_role="run", data_status="failed")
    assert len(failed) == 1
    card = page.find(tag="article", data_segment="odd_title")
    assert card and "Not run yet" in page.text(card[0])


def test_days_selects_the_period(demo: Path) -> None:
    page = Page(report_of(demo, days=365))
    everyone = dict(
        query(demo, "SELECT segment, count(*) FROM segql.segql_history "
              "WHERE change = 'enter' GROUP BY 1")
    )  # fmt: skip
    for name, count in everyone.items():
        shown = [e for e in page.find(data_figure="entered") if e["card"] == name]
        assert number(page.text(shown[0])) == count
    with pytest.raises(SegqlError, match="--days"):
        report_of(demo, days=0)


def test_a_warehouse_where_segql_never_ran(tmp_path: Path) -> None:
    init_project(tmp_path / "fresh", people=50, anchor=date(2026, 11, 1))
    with pytest.raises(SegqlError, match="segql has not run"):
        report_of(tmp_path / "fresh")


def test_two_hundred_segments_cap_the_heatmap(many: Path) -> None:
    text = report_of(many)
    page = Page(text)
    assert len(page.find(tag="article")) == 200
    assert len(page.find(tag="input", id="segment-filter")) == 1
    cells = page.find(data_role="overlap-cell")
    assert len(cells) == OVERLAP_LIMIT**2
    largest = [
        name
        for name, _ in query(
            many,
            "SELECT segment, count(*) FROM segql.segql_members GROUP BY 1 ORDER BY 2 DESC, 1",
        )
    ][:OVERLAP_LIMIT]
    assert {e["attrs"]["data-a"] for e in cells} == set(largest)
    assert f"The {OVERLAP_LIMIT} largest of" in text
    sizes = [int(e["attrs"]["data-size"]) for e in page.find(tag="article")]
    assert sizes == sorted(sizes, reverse=True)


# --- a scenario written by hand, on DuckDB and PostgreSQL -----------------------------------

D = datetime
SCENARIO = make_tables(
    people=[person(1, status="paid"), person(2, status="free"), person(3, status="paid")],
    events=[
        event(1, "login", D(2026, 1, 8)),
        event(1, "login", D(2026, 1, 28)),
        event(2, "login", D(2026, 1, 9)),
        event(2, "login", D(2026, 1, 15)),
    ],
)


@pytest.fixture(params=["duckdb", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeProject]:
    uri = request.getfixturevalue("postgres_server").uri if request.param == "postgres" else None
    project = RuntimeProject(tmp_path / "project", request.param, uri)
    yield project
    project.close()


def collect(runtime: RuntimeProject, days: int) -> dict[str, Any]:
    project = load_project(runtime.root)
    warehouse = connect(project.config, read_only=runtime.kind == "duckdb")
    try:
        data = collect_report(warehouse, project, days)
    finally:
        warehouse.close()
    return {
        "segments": {
            f.name: (f.size, f.entered, f.exited, f.in_project, f.exit_reasons)
            for f in data.segments
        },
        "points": {
            f.name: [(p.commit_seq, p.size, p.entered, p.exited) for p in f.points]
            for f in data.segments
        },
        "overlap": data.overlap,
        "runs": [(r.commit_seq, r.status, r.entered, r.exited) for r in data.runs],
    }


def test_report_figures_of_a_scenario_written_by_hand(runtime: RuntimeProject) -> None:
    runtime.write_rules(
        "segment active where did login within 7 days\nsegment paid where status = 'paid'\n"
    )
    runtime.load(SCENARIO)
    for day in (10, 20, 30):
        runtime.run(D(2026, 1, day))
    # Jan 10: 1 and 2 are active, 1 and 3 paid; Jan 20: 1 exits active; Jan 30: 1 is back,
    # 2 exits. A 15-day period starts after the first run, whose sizes are its start.
    report = collect(runtime, days=15)
    assert report["segments"] == {
        "active": (1, 1, 2, True, {"rules": 2}),
        "paid": (2, 0, 0, True, {}),
    }
    assert report["points"] == {
        "active": [(1, 2, 2, 0), (2, 1, 0, 1), (3, 1, 1, 1)],
        "paid": [(1, 2, 2, 0), (2, 2, 0, 0), (3, 2, 0, 0)],
    }
    both = {("active", "active"): 1, ("active", "paid"): 1, ("paid", "active"): 1}
    assert report["overlap"] == {**both, ("paid", "paid"): 2}
    assert report["runs"] == [
        (3, "committed", 1, 1),
        (2, "committed", 0, 1),
        (1, "committed", 4, 0),
    ]
    # paid is deleted: its members exit with that reason, and it stays on the page.
    runtime.write_rules("segment active where did login within 7 days\n")
    runtime.run(D(2026, 2, 5))
    report = collect(runtime, days=60)
    assert report["segments"] == {
        "active": (0, 3, 3, True, {"rules": 3}),
        "paid": (0, 2, 2, False, {"segment_deleted": 2}),
    }
    assert report["points"]["paid"] == [(1, 2, 2, 0), (2, 2, 0, 0), (3, 2, 0, 0), (4, 0, 0, 2)]
    assert report["overlap"] == {}


# --- the page in Chromium ------------------------------------------------------------------


def chromium(url: str, tmp_path: Path, screenshot: Path | None = None) -> str:
    """Open ``url`` in a fresh headless Chromium; the DOM after scripts ran, or a screenshot."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (Debian's chromium package; .ci/run installs it)"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-quic", f"--user-data-dir={profile}",
        "--window-size=1400,2000",
        f"--screenshot={screenshot}" if screenshot else "--dump-dom",
        url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chromium_renders_the_charts_with_the_tables_figures(
    demo: Path, demo_page: Path, tmp_path: Path
) -> None:
    dom = chromium(demo_page.as_uri(), tmp_path)
    page = Page(dom)
    assert page.find(tag="body", data_ready="true"), "the page's script did not run"
    check_figures(page, demo)
    shown = page.find(id="segment-shown")
    assert page.text(shown[0]) == f"{len(load_project(demo).segment_names)} segments"


def test_chromium_filter_box_hides_other_segments(demo_page: Path, tmp_path: Path) -> None:
    page = Page(chromium(demo_page.as_uri() + "#filter=churn", tmp_path))
    visible = {e["attrs"]["data-segment"] for e in page.find(tag="article") if
               "hidden" not in e["attrs"]}  # fmt: skip
    assert visible == {"churn_risk"}
    assert page.text(page.find(id="segment-shown")[0]).startswith("1 of ")


def test_chromium_screenshot(demo_page: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    chromium(demo_page.as_uri(), tmp_path, screenshot)
    assert png_size(screenshot) == (1400, 2000)
    assert len(screenshot.read_bytes()) > 50_000, "the screenshot is nearly blank"
    if os.environ.get("SEGQL_UPDATE_DOCS") == "1":
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)


def test_chromium_renders_two_hundred_segments(many: Path, tmp_path: Path) -> None:
    page_file = tmp_path / "many.html"
    page_file.write_text(report_of(many), encoding="utf-8")
    page = Page(chromium(page_file.as_uri() + "#filter=seg_007", tmp_path))
    assert page.find(tag="body", data_ready="true")
    visible = [e for e in page.find(tag="article") if "hidden" not in e["attrs"]]
    assert [e["attrs"]["data-segment"] for e in visible] == ["seg_007"]
    assert len(page.find(data_role="size-chart")) == 200
    chromium(page_file.as_uri(), tmp_path, tmp_path / "many.png")
    assert png_size(tmp_path / "many.png") == (1400, 2000)
