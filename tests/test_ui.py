"""``segql ui`` without a browser (Starlette's TestClient): the token, the Host check and
CSRF refuse what they must, ``--read-only`` refuses writes, nothing from the data reaches a
page unescaped, and every figure on a page is what the command line prints."""

from __future__ import annotations

import csv
import io
import json
import re
import socket
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from segql.cli import main
from segql.errors import SegqlError
from segql.ui.app import create_app
from segql.ui.security import CSRF_HEADER, Secrets
from segql.ui.server import bind
from tests.support.ui import EVENT, MARKED_PERSON, SCRIPT, make_ui_project

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ui_project(tmp_path_factory.mktemp("ui") / "demo")


@pytest.fixture(scope="module")
def keys() -> Secrets:
    return Secrets(PORT)


def client_of(folder: Path, keys: Secrets, read_only: bool = False) -> TestClient:
    return TestClient(create_app(folder, keys, read_only), base_url=BASE)


@pytest.fixture
def app(demo: Path, keys: Secrets) -> Iterator[TestClient]:
    with client_of(demo, keys) as client:
        assert client.get(f"/?token={keys.token}").status_code == 200  # the cookie is set
        yield client


def cli(folder: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--project", str(folder), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def cli_json(folder: Path, *args: str) -> Any:
    return json.loads(cli(folder, *args, "--format", "json"))


class Cells(HTMLParser):
    """The text of every element with a ``data-role``, by role (in document order)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, str | None, list[str]]] = []
        self.found: dict[str, list[str]] = {}
        self.attributes: dict[str, list[dict[str, str | None]]] = {}
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"meta", "input", "link", "br", "img", "circle", "polyline", "rect", "line"}:
            role = dict(attrs).get("data-role")
            if role:
                self.attributes.setdefault(role, []).append(dict(attrs))
            return
        role = dict(attrs).get("data-role")
        if role:
            self.attributes.setdefault(role, []).append(dict(attrs))
        self.open.append((tag, role, []))

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            name, role, parts = self.open.pop()
            text = "".join(parts)
            if self.open:
                self.open[-1][2].append(text)
            if role:
                self.found.setdefault(role, []).append(" ".join(text.split()))
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        if self.open:
            self.open[-1][2].append(data)

    def text(self, role: str) -> list[str]:
        return self.found.get(role, [])


class Tables(HTMLParser):
    """The rows (lists of cell texts) of every table with a ``data-role``, by role."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, list[list[str]]] = {}
        self.role: str | None = None
        self.cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.role = dict(attrs).get("data-role")
        elif tag == "tr" and self.role:
            self.rows.setdefault(self.role, []).append([])
        elif tag in {"td", "th"} and self.role:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.role = None
        elif tag in {"td", "th"} and self.role and self.cell is not None:
            self.rows[self.role][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def number(text: str) -> int:
    return int(text.replace(",", "").replace("\u2212", "-").replace("+", ""))


# --- safety --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/segments/marked",
        "/people/1",
        "/builder",
        "/static/app.js",
        "/segments/marked/members.csv",
        "/builder/check?condition=x",
    ],
)
def test_every_request_without_the_token_is_refused(demo: Path, keys: Secrets, path: str) -> None:
    with client_of(demo, keys) as client:
        refused = client.get(path, follow_redirects=False)
        assert refused.status_code == 403
        assert "token" in refused.text and keys.token not in refused.text
        wrong = client.get(path + ("&" if "?" in path else "?") + "token=not-it")
        assert wrong.status_code == 403
        client.cookies.set(keys.cookie, "not-it")
        assert client.get(path).status_code == 403


def test_the_token_once_then_a_strict_cookie(demo: Path, keys: Secrets) -> None:
    with client_of(demo, keys) as client:
        first = client.get(f"/segments/marked?token={keys.token}&q=1", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/segments/marked?q=1"  # the token leaves the URL
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/segments/marked").status_code == 200
    other = Secrets(PORT)  # a new start: a new token; the old cookie opens nothing
    with client_of(demo, other) as client:
        client.cookies.set(other.cookie, keys.token)
        assert client.get("/").status_code == 403


def test_another_host_name_is_refused(app: TestClient) -> None:
    assert app.get("/", headers={"host": "evil.example:8765"}).status_code == 403
    assert app.get("/", headers={"host": f"localhost:{PORT}"}).status_code == 200


def test_pages_forbid_framing_and_foreign_scripts(app: TestClient) -> None:
    headers = app.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def overrides(folder: Path) -> list[dict[str, Any]]:
    return cli_json(folder, "overrides", "pricing_curious")  # type: ignore[no-any-return]


def test_writes_need_the_csrf_header_and_our_origin(
    app: TestClient, keys: Secrets, demo: Path
) -> None:
    body = {"person_id": "7", "reason": "asked"}
    before = overrides(demo)
    assert app.post("/segments/pricing_curious/exclude", json=body).status_code == 403
    wrong = {CSRF_HEADER: "not-it"}
    assert (
        app.post("/segments/pricing_curious/exclude", json=body, headers=wrong).status_code == 403
    )
    foreign = {CSRF_HEADER: keys.csrf, "origin": "http://evil.example"}
    assert (
        app.post("/segments/pricing_curious/exclude", json=body, headers=foreign).status_code == 403
    )
    assert overrides(demo) == before
    ours = {CSRF_HEADER: keys.csrf, "origin": BASE}
    done = app.post("/segments/pricing_curious/exclude", json=body, headers=ours)
    assert done.status_code == 200, done.text
    assert done.json()["message"] == "1 excluded from pricing_curious; the next run applies it"
    found = [o for o in overrides(demo) if o["person_id"] == "7"]
    assert found and found[0]["kind"] == "exclude" and found[0]["reason"] == "asked"
    cli(demo, "clear-override", "pricing_curious", "7")


def test_exclude_needs_a_reason_and_a_known_segment(app: TestClient, keys: Secrets) -> None:
    headers = {CSRF_HEADER: keys.csrf}
    missing = app.post("/segments/marked/exclude", json={"person_id": "1"}, headers=headers)
    assert missing.status_code == 400 and "reason" in missing.json()["error"]
    unknown = app.post(
        "/segments/markd/exclude", json={"person_id": "1", "reason": "r"}, headers=headers
    )
    assert unknown.status_code == 400 and "did you mean 'marked'" in unknown.json()["error"]


def test_read_only_refuses_every_write(demo: Path, keys: Secrets) -> None:
    with client_of(demo, keys, read_only=True) as client:
        client.get(f"/?token={keys.token}")
        headers = {CSRF_HEADER: keys.csrf}
        before = overrides(demo)
        refused = client.post(
            "/segments/marked/exclude", json={"person_id": "1", "reason": "r"}, headers=headers
        )
        assert refused.status_code == 403 and "--read-only" in refused.json()["error"]
        saved = client.post(
            "/builder/save", json={"name": "ro", "condition": "status = 'paid'"}, headers=headers
        )
        assert saved.status_code == 403 and "--read-only" in saved.json()["error"]
        assert overrides(demo) == before
        assert not (demo / "segments" / "ro.segql").exists()
        page = client.get("/segments/marked").text
        assert 'data-role="read-only"' in page and 'data-role="exclude-form"' not in page


# --- nothing unescaped -----------------------------------------------------------------------


def test_markup_from_the_data_is_escaped_on_every_page(app: TestClient) -> None:
    pages = {
        "/": app.get("/").text,
        "/segments/marked": app.get("/segments/marked?col=country").text,
        "/people": app.get(f"/people/{MARKED_PERSON}?explain=marked").text,
        "/builder": app.get(
            "/builder/check", params={"condition": f"country = '{SCRIPT}'", "col": "country"}
        ).text,
        "/builder event": app.get(
            "/builder/check", params={"condition": f"did `{EVENT}x`"}
        ).text,  # an unknown event: a warning names it
    }
    for where, page in pages.items():
        assert "<script>alert" not in page, where
        assert "<img src=x" not in page, where
        assert "&lt;script&gt;alert" in page or "&lt;img src=x" in page, where
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["/people"]  # the clause's event name
    csv_text = app.get("/segments/marked/members.csv?col=country").text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["country"] for r in rows] == [SCRIPT]  # a CSV is data, as `segql members` writes it


# --- the figures are the command line's --------------------------------------------------


def test_overview_shows_list_and_stats_figures(app: TestClient, demo: Path) -> None:
    cells = Cells(app.get("/").text)
    shown = [a["data-segment"] for a in cells.attributes["segment-row"]]
    stats = {row["segment"]: row for row in cli_json(demo, "stats")}
    listed = {r["name"]: r for r in cli_json(demo, "list") if r["kind"] == "segment"}
    assert shown == list(listed)
    sizes = [number(t) for t in cells.text("size")]
    assert sizes == [listed[name]["members"] for name in shown]
    assert [number(t) for t in cells.text("entered")] == [stats[n]["entered"] for n in shown]
    assert [-number(t) for t in cells.text("exited")] == [stats[n]["exited"] for n in shown]
    assert len(cells.attributes["sparkline"]) == len(shown)
    assert (
        "marked" in cells.text("title")[shown.index("marked")]
        or SCRIPT in cells.text("title")[shown.index("marked")]
    )


def test_overview_filters_by_search_and_tag(app: TestClient) -> None:
    def visible(query: str) -> list[str]:
        page = app.get("/" + query).text
        rows = re.findall(r'<tr( hidden)? data-role="segment-row" data-segment="([^"]+)"', page)
        return [name for hidden, name in rows if not hidden]

    assert visible("?tag=markup") == ["marked"]
    assert visible("?q=trial") == ["trial_users", "trial_converted"]
    assert visible("?q=TRIAL&tag=markup") == []


def test_segment_page_cards_members_and_csv_equal_the_cli(app: TestClient, demo: Path) -> None:
    name = "pricing_curious"
    stats = cli_json(demo, "stats", name)[0]
    cells = Cells(app.get(f"/segments/{name}?col=country&col=lifetime_value").text)
    assert number(cells.text("members")[0]) == stats["members"]
    assert number(cells.text("entered")[0]) == stats["entered"]
    assert -number(cells.text("exited")[0]) == stats["exited"]
    assert stats["growth_pct"] is not None  # the first run is before the period
    assert cells.text("growth")[0] == f"{stats['growth_pct']:.4g}%"
    members = cli_json(demo, "members", name, "--columns", "country,lifetime_value")
    shown = [a["data-person"] for a in cells.attributes["member"]]
    assert shown == [str(m["person_id"]) for m in members][:50]
    assert len(cells.attributes["size-chart"]) == 1 and len(cells.attributes["moves-chart"]) == 1
    exported = app.get(f"/segments/{name}/members.csv?col=country&col=lifetime_value").text
    assert exported == cli(
        demo, "members", name, "--columns", "country,lifetime_value", "--format", "csv"
    )


def test_members_are_paged_fifty_at_a_time_and_searchable(app: TestClient, demo: Path) -> None:
    name = "active_people"
    everyone = [str(m["person_id"]) for m in cli_json(demo, "members", name)]
    assert len(everyone) > 50
    second = Cells(app.get(f"/segments/{name}?page=2").text)
    assert [a["data-person"] for a in second.attributes["member"]] == everyone[50:100]
    wanted = everyone[3]
    found = Cells(app.get(f"/segments/{name}", params={"q": wanted}).text)
    persons = [a["data-person"] for a in found.attributes["member"]]
    assert wanted in persons and all(wanted in p for p in persons)
    by_country = Cells(app.get(f"/segments/{name}", params={"q": "fr", "col": "country"}).text)
    countries = cli_json(demo, "members", name, "--columns", "country")
    assert [a["data-person"] for a in by_country.attributes["member"]] == [
        str(m["person_id"]) for m in countries if m["country"] == "FR"
    ][:50]


def test_person_page_is_segql_person_and_explain(app: TestClient, demo: Path) -> None:
    person = cli_json(demo, "person", str(MARKED_PERSON))
    tables = Tables(app.get(f"/people/{MARKED_PERSON}?explain=marked").text)
    assert [r[0] for r in tables.rows["person-segments"][1:]] == [
        r["segment"] for r in person["segments"]
    ]
    history = tables.rows["person-history"]
    assert history[0] == ["commit_seq", "as_of", "segment", "change", "reason", "version"]
    assert [(int(r[0]), r[2], r[3], r[4]) for r in history[1:]] == [
        (h["commit_seq"], h["segment"], h["change"], h["reason"]) for h in person["history"]
    ]
    traits = {r[0]: r[1] for r in tables.rows["person-traits"]}
    assert set(traits) == set(person["traits"])
    explain = cli_json(
        demo, "explain", "marked", "--person", str(MARKED_PERSON), "--as-of", "2026-11-01"
    )
    assert [(r[0], number(r[1]), number(r[2]), r[3]) for r in tables.rows["explain"][1:]] == [
        (r["clause"], r["alone"], r["cumulative"], r["person"]) for r in explain
    ]


def test_builder_count_funnel_and_errors_are_preview_and_explain(
    app: TestClient, demo: Path
) -> None:
    condition = "status = 'paid' and did video_rendered within 30 days"
    preview = cli_json(demo, "preview", condition)[0]
    cells = Cells(app.get("/builder/check", params={"condition": condition, "col": "plan"}).text)
    assert number(cells.text("count")[0]) == preview["matching"]
    sample = Tables(app.get("/builder/check", params={"condition": condition, "col": "plan"}).text)
    assert sample.rows["sample"][0] == ["person_id", "plan"]
    assert [r[0] for r in sample.rows["sample"][1:]] == preview["sample"]
    plans = {
        str(m["person_id"]): m["plan"]
        for m in cli_json(demo, "members", "active_people", "--columns", "plan")
    }
    assert all(r[1] == (plans.get(r[0]) or "") for r in sample.rows["sample"][1:] if r[0] in plans)
    typo = "staus = 'paid'"
    result = CliRunner().invoke(main, ["--project", str(demo), "preview", typo])
    assert result.exit_code == 1
    error = Cells(app.get("/builder/check", params={"condition": typo}).text)
    assert error.text("error")[0] == " ".join(result.stderr.split())
    assert error.attributes["suggestion"][0]["data-text"] == "status"
    assert error.attributes["suggestion"][0]["data-start"] == "0"


def test_builder_errors_on_a_later_line_are_the_clis(app: TestClient, demo: Path) -> None:
    condition = "status = 'paid'\n  and staus = 'x'\n  and plann = 'pro'"
    result = CliRunner().invoke(main, ["--project", str(demo), "preview", condition])
    assert result.exit_code == 1
    page = Cells(app.get("/builder/check", params={"condition": condition}).text)
    assert "\n".join(page.text("error")) == "\n".join(
        " ".join(block.split())
        for block in result.stderr.strip().split("\n\n")
        if not block.strip().endswith("errors")
    )
    assert page.text("error")[0].startswith("<condition>:2:7: error: unknown property 'staus'")
    starts = [int(a["data-start"] or -1) for a in page.attributes["suggestion"]]
    assert [condition[s : s + 5] for s in starts] == ["staus", "plann"]


def test_builder_suggestion_offsets_count_as_the_page_does(app: TestClient) -> None:
    # The page's JavaScript indexes strings in UTF-16 code units: an emoji is two of them.
    condition = "plan = '🚀 pro' and staus = 'x'"
    page = Cells(app.get("/builder/check", params={"condition": condition}).text)
    button = page.attributes["suggestion"][0]
    units = condition.encode("utf-16-le")
    start, end = int(button["data-start"]), int(button["data-end"])
    assert units[2 * start : 2 * end].decode("utf-16-le") == "staus"


def test_builder_funnel_equals_explain_of_the_saved_segment(
    app: TestClient, keys: Secrets, demo: Path
) -> None:
    condition = "status = 'paid'   and did   login within 30 days"
    saved = app.post(
        "/builder/save",
        headers={CSRF_HEADER: keys.csrf},
        json={
            "name": "ui_saved",
            "condition": condition,
            "title": "Saved <b>here</b>",
            "tags": "new, ui",
        },
    )
    assert saved.status_code == 200, saved.text
    path = demo / "segments" / "ui_saved.segql"
    text = path.read_text(encoding="utf-8")
    assert text == (
        "segment ui_saved\n"
        '  title "Saved <b>here</b>"\n'
        "  tags 'new', 'ui'\n"
        "  where status = 'paid' and did login within 30 days\n"
    )
    cli(demo, "fmt", "--check", str(path))
    try:
        explain = cli_json(demo, "explain", "ui_saved", "--as-of", "2026-11-01")
        page = Tables(app.get("/builder/check", params={"condition": condition}).text)
        assert [(r[0], number(r[1]), number(r[2])) for r in page.rows["funnel"][1:]] == [
            (r["clause"], r["alone"], r["cumulative"]) for r in explain
        ]
        assert 'data-segment="ui_saved"' in app.get("/").text
        again = app.post(
            "/builder/save",
            headers={CSRF_HEADER: keys.csrf},
            json={"name": "ui_saved", "condition": condition},
        )
        assert again.status_code == 400 and "already has" in again.json()["error"]
        bad = app.post(
            "/builder/save",
            headers={CSRF_HEADER: keys.csrf},
            json={"name": "x-y", "condition": condition},
        )
        assert bad.status_code == 400 and not (demo / "segments" / "x-y.segql").exists()
        wrong = app.post(
            "/builder/save",
            headers={CSRF_HEADER: keys.csrf},
            json={"name": "ui_wrong", "condition": "staus = 'paid'"},
        )
        assert wrong.status_code == 400 and "did you mean 'status'" in wrong.json()["error"]
        assert not (demo / "segments" / "ui_wrong.segql").exists()
    finally:
        path.unlink()


def test_unknown_segment_is_a_404_with_a_suggestion(app: TestClient) -> None:
    page = app.get("/segments/markd")
    assert page.status_code == 404 and "did you mean &#39;marked&#39;" in page.text


# --- before any run, and the server's errors ----------------------------------------------


def test_pages_render_before_any_run(tmp_path: Path, keys: Secrets) -> None:
    folder = make_ui_project(tmp_path / "fresh", runs=())
    with client_of(folder, keys) as client:
        client.get(f"/?token={keys.token}")
        for path in ("/", "/segments/marked", f"/people/{MARKED_PERSON}", "/builder"):
            page = client.get(path)
            assert page.status_code == 200, (path, page.text)
        assert "No committed run yet" in client.get("/").text
        assert 'data-role="empty"' in client.get("/segments/marked").text
        cells = Cells(client.get("/builder/check", params={"condition": "status = 'paid'"}).text)
        assert (
            number(cells.text("count")[0])
            == cli_json(folder, "preview", "status = 'paid'")[0]["matching"]
        )


def test_a_port_in_use_is_a_clear_error() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        with pytest.raises(SegqlError, match="is in use") as error:
            bind(taken.getsockname()[1])
        assert "--port" in (error.value.help or "")
    finally:
        taken.close()
    listener = bind(0)
    try:
        assert listener.getsockname()[0] == "127.0.0.1"
    finally:
        listener.close()


def test_segql_ui_on_a_taken_port_says_so(demo: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(main, ["--project", str(demo), "ui", "--port", port])
    finally:
        taken.close()
    assert result.exit_code == 1
    assert f"error: port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.output


def test_segql_ui_help_answers() -> None:
    result = CliRunner().invoke(main, ["ui", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--read-only" in result.output
