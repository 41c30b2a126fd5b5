"""``segql dispatch``: at-least-once delivery of history changes to webhooks and files.

The webhook tests run a real HTTP server on 127.0.0.1 that fails 30% of requests (a 500,
or an answer slower than the client's timeout, after it has processed the request) and
stops by itself after a bounded number of requests or seconds. The dispatcher process is
killed with SIGKILL midway and started again; at the end the event ids received must be
exactly the history rows of the configured segment and change: none missing, none extra.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from segql.config import ProjectConfig
from segql.downstream.dispatch import (
    Action,
    Dispatcher,
    backoff_delay,
    parse_actions,
    repair_tail,
    run_dispatch,
    run_retry_failed,
    run_status,
)
from segql.engines import connect
from segql.errors import SegqlConfigError, SegqlError
from segql.project import load_project
from tests.support.runtime import RuntimeProject
from tests.support.scenario import make_tables, person

D = datetime
RULES = """
segment paid where status = 'paid'
segment pro where plan = 'pro'
"""
PEOPLE = 90


def people(step: int) -> list[tuple[Any, ...]]:
    """Statuses that change from run to run, so each run has enters and exits."""
    rows = []
    for i in range(1, PEOPLE + 1):
        paid = (i * 7 + step * 3) % 5 < 3
        rows.append(
            person(
                i,
                status="paid" if paid else "free",
                plan="pro" if i % 4 == step % 4 else "x",
                email=f"p{i}@example.com",
                country=f"c{step}",
            )
        )
    return rows


@pytest.fixture
def project(tmp_path: Path) -> Iterator[RuntimeProject]:
    """Four runs of two segments: a few hundred changes over four commits."""
    runtime = RuntimeProject(tmp_path / "project", "duckdb")
    runtime.write_rules(RULES)
    for step, day in enumerate((1, 2, 3, 4)):
        runtime.load(make_tables(people=people(step)))
        runtime.run(D(2026, 1, day))
    yield runtime
    runtime.close()


def add_actions(project: RuntimeProject, text: str) -> None:
    with (project.root / "segql.toml").open("a") as config:
        config.write("\n" + text)


def history_ids(project: RuntimeProject, segment: str, change: str) -> set[str]:
    rows = project.query(
        'SELECT "event_id" FROM {s}."segql_history" WHERE "segment" = '
        f"'{segment}' AND \"change\" = '{change}'"
    )
    return {r[0] for r in rows}


def history_rows(project: RuntimeProject) -> dict[str, tuple[str, str, str, int]]:
    rows = project.query(
        'SELECT "event_id", "segment", "person_id", "change", "commit_seq" FROM {s}."segql_history"'
    )
    return {r[0]: (r[1], r[2], r[3], int(r[4])) for r in rows}


class Receiver:
    """An HTTP server that records what it received and fails on purpose.

    ``fail_rate`` of requests fail: half of them answer 500 without processing, the other
    half are processed and then answered after ``slow`` seconds (past the client's
    timeout), as a receiver that did the work but answered too late. ``always_fail``
    answers every request for those person ids with ``fail_status``. The server stops by
    itself after ``max_requests`` requests or ``max_seconds``.
    """

    def __init__(
        self,
        fail_rate: float = 0.0,
        slow: float = 0.0,
        seed: int = 7,
        max_requests: int = 5000,
        max_seconds: float = 900.0,
    ):
        self.fail_rate, self.slow = fail_rate, slow
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.requests = 0
        self.failed = 0
        self.always_fail: set[str] = set()
        self.fail_status = 500
        self.max_requests, self.deadline = max_requests, time.monotonic() + max_seconds
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.timeout = 0.1
        self.server.handle_error = lambda *args: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.requests < self.max_requests and time.monotonic() < self.deadline:
            self.server.handle_request()
        self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        with self.lock:
            self.requests += 1
            roll = self.random.random()
        status, record, delay = 200, True, 0.0
        if body["person_id"] in self.always_fail:
            status, record = self.fail_status, False
        elif roll < self.fail_rate / 2:
            status, record = 500, False
        elif roll < self.fail_rate:
            delay = self.slow
        if record:
            with self.lock:
                self.received.append(body)
                self.headers.append(dict(request.headers))
        else:
            with self.lock:
                self.failed += 1
        time.sleep(delay)
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def ids(self, segment: str, change: str) -> list[str]:
        with self.lock:
            return [
                b["event_id"]
                for b in self.received
                if b["segment"] == segment and b["change"] == change
            ]

    def stop(self) -> None:
        self.deadline = 0.0
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


WEBHOOKS = """
[[actions]]
name = "welcome"
segment = "paid"
on = "enter"
properties = ["email", "country"]
webhook.url = "{url}"
webhook.headers = {{ Authorization = "Bearer ${{HOOK_TOKEN}}" }}
webhook.timeout = {timeout}
batch_size = {batch}
concurrency = 4
max_attempts = {attempts}
backoff = 0.02
max_backoff = 0.2

[[actions]]
name = "churned"
segment = "paid"
on = "exit"
webhook = {{ url = "{url}", timeout = {timeout} }}
batch_size = {batch}
concurrency = 4
max_attempts = {attempts}
backoff = 0.02
max_backoff = 0.2
"""


def dispatcher_process(project: RuntimeProject, *args: str, **env: str) -> subprocess.Popen[str]:
    module = "segql.downstream.dispatch"
    command = [sys.executable, "-m", module, "--project", str(project.root), *args]
    return subprocess.Popen(
        command,
        env={**os.environ, "HOOK_TOKEN": "s3cret", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_webhook_survives_failures_and_sigkill(
    project: RuntimeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    receiver = Receiver(fail_rate=0.3, slow=0.6, max_requests=4000, max_seconds=900)
    try:
        add_actions(project, WEBHOOKS.format(url=receiver.url, timeout=0.3, batch=15, attempts=12))
        entered, exited = (
            history_ids(project, "paid", "enter"),
            history_ids(project, "paid", "exit"),
        )
        assert len(entered) > 100 and len(exited) > 50

        first = dispatcher_process(project, "--quiet")
        deadline = time.monotonic() + 300
        while receiver.count() < 40 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=300)
        assert first.returncode == -signal.SIGKILL, "the dispatcher finished before the kill"
        received_before_restart = receiver.count()
        assert received_before_restart < len(entered) + len(exited)

        second = dispatcher_process(project, "--quiet")
        _out, err = second.communicate(timeout=600)
        assert second.returncode == 0, err
        # Parked changes (12 failures in a row are unlikely) are sent again.
        for _ in range(3):
            status, failed = run_status(project.root)
            if not failed.rows:
                break
            run_retry_failed(project.root)
    finally:
        receiver.stop()

    assert receiver.count() > received_before_restart
    assert receiver.failed > 0
    welcome, churned = receiver.ids("paid", "enter"), receiver.ids("paid", "exit")
    assert set(welcome) == entered
    assert set(churned) == exited
    history = history_rows(project)
    for body, headers in zip(receiver.received, receiver.headers, strict=True):
        assert body["event_id"] in history
        assert (body["segment"], body["person_id"], body["change"], body["commit_seq"]) == (
            history[body["event_id"]]
        )
        assert headers["Idempotency-Key"] == body["event_id"]
    assert {b["segment"] for b in receiver.received} == {"paid"}  # pro has no action
    # Deliveries were repeated somewhere (slow answers, the kill), never lost.
    assert len(receiver.received) > len(entered) + len(exited)
    welcome_bodies = [b for b in receiver.received if b["change"] == "enter"]
    pid = welcome_bodies[0]["person_id"]
    assert welcome_bodies[0]["properties"] == {"email": f"p{pid}@example.com", "country": "c3"}
    for body, headers in zip(receiver.received, receiver.headers, strict=True):
        expected = "Bearer s3cret" if body["change"] == "enter" else None
        assert headers.get("Authorization") == expected
    status, failed = run_status(project.root)
    assert failed.rows == []
    by_action = {row[0]: row for row in status.rows}
    assert by_action["welcome"][5:10] == (4, 4, 0, len(entered), 0)
    assert by_action["churned"][5:10] == (4, 4, 0, len(exited), 0)


FILES = """
[[actions]]
name = "enters_jsonl"
segment = "paid"
on = "enter"
properties = ["email"]
file = {{ path = "exports/paid_enter.jsonl" }}
batch_size = {batch}

[[actions]]
name = "exits_csv"
segment = "paid"
on = "exit"
properties = ["email"]
file = {{ path = "exports/paid_exit.csv", format = "csv" }}
batch_size = {batch}
"""


def test_file_destination_survives_sigkill_and_torn_lines(project: RuntimeProject) -> None:
    add_actions(project, FILES.format(batch=7))
    entered, exited = history_ids(project, "paid", "enter"), history_ids(project, "paid", "exit")
    jsonl = project.root / "exports" / "paid_enter.jsonl"
    exports = project.root / "exports" / "paid_exit.csv"

    # Killed after a batch reached the file but before it was recorded: it is written again.
    crashed = dispatcher_process(project, "--quiet", SEGQL_DISPATCH_FAULT="after_send:4")
    crashed.communicate(timeout=600)
    assert crashed.returncode == -signal.SIGKILL
    # A write cut short by a crash: a last line with no newline.
    with jsonl.open("ab") as file:
        file.write(b'{"event_id":"torn-')

    # Killed at an arbitrary moment, from outside.
    second = dispatcher_process(project, "--quiet")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and second.poll() is None:
        if jsonl.exists() and jsonl.read_bytes().count(b"\n") >= 60:
            break
        time.sleep(0.002)
    second.send_signal(signal.SIGKILL)
    second.communicate(timeout=300)

    last = dispatcher_process(project, "--quiet")
    _, err = last.communicate(timeout=600)
    assert last.returncode == 0, err

    lines = jsonl.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses: none torn
    ids = [r["event_id"] for r in records]
    assert set(ids) == entered
    assert len(ids) > len(set(ids))  # the batch written before the kill came again
    assert all(r["change"] == "enter" and r["segment"] == "paid" for r in records)
    assert records[0]["properties"] == {"email": f"p{records[0]['person_id']}@example.com"}

    table = list(csv.DictReader(io.StringIO(exports.read_text())))
    assert {row["event_id"] for row in table} == exited
    assert set(table[0]) == {"event_id", "segment", "person_id", "change", "as_of", "reason",
                             "commit_seq", "email"}  # fmt: skip
    assert exports.read_text().count("event_id,segment") == 1  # one header


def test_parked_changes_are_shown_and_retried(
    project: RuntimeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    receiver = Receiver()
    try:
        add_actions(project, WEBHOOKS.format(url=receiver.url, timeout=2, batch=50, attempts=3))
        entered = history_ids(project, "paid", "enter")
        unlucky = {"3", "5"}
        receiver.always_fail = unlucky
        result = run_dispatch(project.root, actions=["welcome"])
        parked_count = result.rows[0][5]
        assert parked_count > 0
        status, failed = run_status(project.root)
        assert {row[4] for row in failed.rows} == unlucky
        assert {row[6] for row in failed.rows} == {3}  # attempts
        assert all("HTTP 500" in row[7] for row in failed.rows)
        welcome = {row[0]: row for row in status.rows}["welcome"]
        assert welcome[5] == welcome[6] == 4  # the cursor moved past the parked changes
        assert welcome[7:10] == (0, len(entered) - parked_count, parked_count)
        assert set(receiver.ids("paid", "enter")) == entered - {row[2] for row in failed.rows}

        # Still failing: attempts add up; then the receiver recovers.
        run_retry_failed(project.root, actions=["welcome"])
        assert {row[6] for row in run_status(project.root)[1].rows} == {6}
        receiver.always_fail = set()
        retried = run_retry_failed(project.root, actions=["welcome"])
        assert retried.rows[0][1:4] == (parked_count, parked_count, 0)
        assert run_status(project.root)[1].rows == []
        assert set(receiver.ids("paid", "enter")) == entered
    finally:
        receiver.stop()


def test_refused_requests_are_parked_without_retrying(
    project: RuntimeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    receiver = Receiver()
    try:
        add_actions(project, WEBHOOKS.format(url=receiver.url, timeout=2, batch=50, attempts=5))
        receiver.always_fail, receiver.fail_status = {"3"}, 422
        run_dispatch(project.root, actions=["welcome"])
        failed = run_status(project.root)[1].rows
        assert failed and {(row[4], row[6]) for row in failed} == {("3", 1)}
        assert all("HTTP 422" in row[7] and "not retried" in row[7] for row in failed)
    finally:
        receiver.stop()


def test_only_new_changes_are_sent_after_a_run(
    project: RuntimeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    receiver = Receiver()
    try:
        add_actions(project, WEBHOOKS.format(url=receiver.url, timeout=2, batch=50, attempts=3))
        run_dispatch(project.root)
        sent = len(receiver.received)
        assert run_dispatch(project.root).rows[0][4] == 0
        assert len(receiver.received) == sent
        project.load(make_tables(people=people(9)))
        project.run(D(2026, 1, 5))
        run_dispatch(project.root)
        new = history_ids(project, "paid", "enter") | history_ids(project, "paid", "exit")
        ids = [b["event_id"] for b in receiver.received]
        assert len(ids) == len(set(ids)) == len(new)  # no failures: each exactly once
    finally:
        receiver.stop()


def test_start_now_skips_recorded_history(project: RuntimeProject) -> None:
    receiver = Receiver()
    try:
        add_actions(
            project,
            f'[[actions]]\nsegment = "paid"\non = "enter"\nstart = "now"\n'
            f'webhook = {{ url = "{receiver.url}" }}\n',
        )
        assert run_dispatch(project.root).rows[0][4] == 0
        project.load(make_tables(people=people(9)))
        project.run(D(2026, 1, 5))
        run_dispatch(project.root)
        latest = project.query('SELECT max("commit_seq") FROM {s}."segql_history"')[0][0]
        assert {b["commit_seq"] for b in receiver.received} == {latest}
    finally:
        receiver.stop()


def test_missing_header_variable_names_the_action(
    project: RuntimeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_actions(project, WEBHOOKS.format(url="http://127.0.0.1:9/x", timeout=1, batch=5,
                                         attempts=1))  # fmt: skip
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    with pytest.raises(SegqlConfigError) as error:
        run_dispatch(project.root)
    assert error.value.message == (
        "[[actions]] #1 webhook.headers.Authorization uses ${HOOK_TOKEN}, which is not set in "
        "the environment"
    )


def test_unknown_property_and_segment(project: RuntimeProject) -> None:
    add_actions(
        project,
        '[[actions]]\nsegment = "paid"\non = "enter"\nproperties = ["emial"]\n'
        'file = { path = "x.jsonl" }\n',
    )
    with pytest.raises(SegqlConfigError, match=r"#1: properties: 'emial' is not a column of "
                       r"people or a trait: did you mean 'email'\?"):  # fmt: skip
        run_dispatch(project.root)
    config = (project.root / "segql.toml").read_text().replace('"emial"', '"email"')
    (project.root / "segql.toml").write_text(config.replace('segment = "paid"', 'segment = "payd"'))
    with pytest.raises(SegqlConfigError, match=r"#1: segment 'payd' is not a segment of this "
                       r"project: did you mean 'paid'\?"):  # fmt: skip
        run_dispatch(project.root)


def test_no_actions(project: RuntimeProject) -> None:
    with pytest.raises(SegqlConfigError, match=r"no \[\[actions\]\]"):
        run_dispatch(project.root)


CONFIG_ERRORS = [
    ({"segment": "a", "on": "entered", "file": {"path": "x"}},
     '[[actions]] #1: on must be "enter", "exit" or "member", not "entered": did you mean '
     "'enter'?"),
    ({"segment": "a", "on": "enter"},
     "[[actions]] #1: give exactly one destination: webhook = { url = ... } or "
     "file = { path = ... }"),
    ({"on": "enter", "file": {"path": "x"}},
     "[[actions]] #1: segment must be the name of a segment"),
    ({"segment": "a", "on": "exit", "webhook": {"url": "ftp://x"}},
     "[[actions]] #1: webhook.url 'ftp://x' must start with http:// or https://"),
    ({"segment": "a", "on": "exit", "webhook": {"url": "http://x", "timeout": 0}},
     "[[actions]] #1: webhook.timeout must be a positive number of seconds, not 0"),
    ({"segment": "a", "on": "exit", "webhook": {"url": "http://x", "headers": {"A": 1}}},
     "[[actions]] #1: webhook.headers must be a table of strings"),
    ({"segment": "a", "on": "exit", "webhook": {"url": "http://x", "method": "FETCH"}},
     '[[actions]] #1: webhook.method must be one of POST, PUT, PATCH, DELETE, GET, not "FETCH"'),
    ({"segment": "a", "on": "exit", "webhook": {"url": "http://x", "retries": 3}},
     "[[actions]] #1: webhook.retries is not a webhook field (url, method, headers, timeout)"),
    ({"segment": "a", "on": "exit", "file": {"path": "x", "format": "xml"}},
     '[[actions]] #1: file.format must be "jsonl" or "csv", not "xml"'),
    ({"segment": "a", "on": "exit", "file": {"path": "x"}, "concurrency": 0},
     "[[actions]] #1: concurrency must be a whole number from 1 to 256, not 0"),
    ({"segment": "a", "on": "exit", "file": {"path": "x"}, "max_atempts": 3},
     "[[actions]] #1: unknown field 'max_atempts': did you mean 'max_attempts'?"),
    ({"segment": "a", "on": "exit", "file": {"path": "x"}, "properties": "email"},
     "[[actions]] #1: properties must be a list of column names of the entity table"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "message"), CONFIG_ERRORS)
def test_config_errors_name_the_action_and_field(action: dict[str, Any], message: str) -> None:
    with pytest.raises(SegqlConfigError) as error:
        parse_actions(ProjectConfig(root=Path("."), raw={"actions": [action]}))
    assert error.value.message == message


def test_duplicate_action_names() -> None:
    action = {"segment": "a", "on": "exit", "file": {"path": "x"}, "name": "n"}
    with pytest.raises(
        SegqlConfigError, match=r"#2: name 'n' is already used by \[\[actions\]\] #1"
    ):
        parse_actions(ProjectConfig(root=Path("."), raw={"actions": [action, action]}))


def test_backoff_is_exponential_capped_and_jittered() -> None:
    action = Action(1, "a", "s", "enter", backoff=0.5, max_backoff=4.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (12, 4.0)]:
        delays = [backoff_delay(action, attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jitter spreads retries out


def test_repair_tail_cuts_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    for content, expected in [
        (b"", b""),
        (b'{"a":1}\n', b'{"a":1}\n'),
        (b'{"a":1}\n{"b":', b'{"a":1}\n'),
        (b'{"b":', b""),
        (b"x" * 70_000 + b"\n" + b"y" * 70_000, b"x" * 70_000 + b"\n"),
    ]:
        path.write_bytes(content)
        fd = os.open(path, os.O_RDWR)
        try:
            assert repair_tail(fd) == len(expected)
        finally:
            os.close(fd)
        assert path.read_bytes() == expected


def test_dispatch_status_before_any_run(tmp_path: Path) -> None:
    runtime = RuntimeProject(tmp_path / "fresh", "duckdb")
    runtime.write_rules(RULES)
    add_actions(runtime, '[[actions]]\nsegment = "paid"\non = "enter"\nfile = { path = "x" }\n')
    project = load_project(runtime.root)
    warehouse = connect(project.config)
    try:
        with pytest.raises(SegqlError, match="segql has not run in this warehouse yet"):
            Dispatcher(project, warehouse).status()
    finally:
        warehouse.close()


def test_status_as_json_is_one_document(project: RuntimeProject) -> None:
    add_actions(project, FILES.format(batch=7))
    result = project.cli("dispatch", "--status", "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # two documents in a row would not parse
    assert set(document) == {"actions", "parked"}
    assert {row["action"] for row in document["actions"]} == {"enters_jsonl", "exits_csv"}
    assert document["parked"] == []
