"""Built-in destinations against local servers that answer as Resend's and Meta's
documented APIs do: the audience ends equal to the segment, through rate limits, a
dispatcher killed with SIGKILL midway, and drift repaired by ``--resync``."""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from segql.cli import main
from segql.config import ProjectConfig
from segql.downstream.dispatch import (
    parse_actions,
    run_dispatch,
    run_resync,
    run_retry_failed,
    run_status,
)
from segql.downstream.dispatch.destinations import MetaCustomAudience, meta_hash
from segql.engines import connect
from segql.errors import SegqlError
from segql.project import load_project
from tests.support.runtime import RuntimeProject
from tests.support.scenario import make_tables, person
from tests.support.services import FakeMetaAudience, FakeResend
from tests.test_dispatch import RULES, D, add_actions, dispatcher_process, people

RESEND_KEY = "re_live_1234567890abcdef"
META_TOKEN = "EAAGm0PX4ZCpsBAKZC0secret"
AUDIENCE = "78261eea-8f8b-4381-83c6-79fa7120f1cf"
META_AUDIENCE = "23851234567890"

MIRRORS = """
[[actions]]
name = "resend_mirror"
segment = "paid"
mode = "mirror"
destination = "resend"
audience_id = "{audience}"
token = "${{RESEND_API_KEY}}"
base_url = "{resend}"
properties = ["email"]
rate = "2000/s"
batch_size = {batch}
concurrency = 4
max_attempts = 12
backoff = 0.01
max_backoff = 0.05

[[actions]]
name = "meta_mirror"
segment = "paid"
mode = "mirror"
destination = "meta_custom_audience"
audience_id = "{meta_audience}"
token = "${{META_TOKEN}}"
base_url = "{meta}"
properties = ["email"]
batch_size = {batch}
max_attempts = 12
backoff = 0.01
max_backoff = 0.05
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RuntimeProject]:
    monkeypatch.setenv("RESEND_API_KEY", RESEND_KEY)
    monkeypatch.setenv("META_TOKEN", META_TOKEN)
    runtime = RuntimeProject(tmp_path / "project", "duckdb")
    runtime.write_rules(RULES)
    for step, day in enumerate((1, 2, 3, 4)):
        runtime.load(make_tables(people=people(step)))
        runtime.run(D(2026, 1, day))
    yield runtime
    runtime.close()


@pytest.fixture
def services() -> Iterator[tuple[FakeResend, FakeMetaAudience]]:
    resend = FakeResend(RESEND_KEY, AUDIENCE, throttle=0.15)
    meta = FakeMetaAudience(META_TOKEN, META_AUDIENCE, throttle=0.15)
    yield resend, meta
    resend.stop()
    meta.stop()


def member_emails(project: RuntimeProject, segment: str = "paid") -> set[str]:
    rows = project.query(
        f'SELECT "person_id" FROM {{s}}."segql_members" WHERE "segment" = \'{segment}\''
    )
    return {f"p{r[0]}@example.com" for r in rows}


def hashed(emails: set[str]) -> set[tuple[str, ...]]:
    return {(hashlib.sha256(e.strip().lower().encode()).hexdigest(),) for e in emails}


def mirrors(resend: FakeResend, meta: FakeMetaAudience, batch: int = 20) -> str:
    return MIRRORS.format(audience=AUDIENCE, meta_audience=META_AUDIENCE, resend=resend.base_url,
                          meta=meta.base_url, batch=batch)  # fmt: skip


def test_audiences_end_equal_to_the_segment_after_sigkill(
    project: RuntimeProject, services: tuple[FakeResend, FakeMetaAudience]
) -> None:
    resend, meta = services
    add_actions(project, mirrors(resend, meta))
    env = {"RESEND_API_KEY": RESEND_KEY, "META_TOKEN": META_TOKEN}
    first = dispatcher_process(project, **env)
    deadline = time.monotonic() + 30
    while len(resend.requests) < 60 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL, "the dispatcher finished before the kill"
    assert resend.emails() != member_emails(project)  # killed midway

    second = dispatcher_process(project, **env)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert RESEND_KEY not in out + err and META_TOKEN not in out + err
    assert resend.throttled > 0 and meta.throttled > 0  # rate limits were met and waited out
    assert run_status(project.root)[1].rows == []
    assert resend.emails() == member_emails(project)
    assert meta.hashes() == hashed(member_emails(project))

    # A later run: the people who entered are added, those who left removed.
    project.load(make_tables(people=people(9)))
    project.run(D(2026, 1, 5))
    run_dispatch(project.root)
    assert resend.emails() == member_emails(project)
    assert meta.hashes() == hashed(member_emails(project))
    # Mirroring adds and removes people: every change of the segment counts.
    by_action = {row[0]: row for row in run_status(project.root)[0].rows}
    assert by_action["resend_mirror"][2] == "mirror"


def test_resync_repairs_an_audience_that_drifted(
    project: RuntimeProject, services: tuple[FakeResend, FakeMetaAudience]
) -> None:
    resend, meta = services
    resend.throttle = meta.throttle = 0.0
    resend.page = 20
    add_actions(project, mirrors(resend, meta, batch=500))
    run_dispatch(project.root)
    members = member_emails(project)
    assert resend.emails() == members
    # Drift: someone removed contacts by hand and added a stranger; Meta lost everyone.
    with resend.lock:
        for email in sorted(members)[:7]:
            del resend.contacts[email]
        resend.contacts["stranger@example.com"] = {"id": "zzz", "email": "stranger@example.com"}
    with meta.lock:
        meta.users.clear()
        meta.users.add(hashed({"p2@example.com"}).pop())  # left the segment long ago
    assert "p2@example.com" not in members

    result = run_resync(project.root, "resend_mirror")
    assert result.rows[0][1:4] == (len(members), 7, 1)
    assert resend.emails() == members
    cli = CliRunner().invoke(
        main, ["--project", str(project.root), "dispatch", "--resync", "meta_mirror", "-q"]
    )
    assert cli.exit_code == 0, cli.output
    assert "meta_mirror" in cli.output and META_TOKEN not in cli.output
    assert meta.hashes() == hashed(members)
    listed = [path for method, path in resend.requests if method == "GET"]
    assert len(listed) >= 2  # the audience was read page by page (20 a page)


def test_refused_requests_are_parked_with_the_service_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESEND_API_KEY", RESEND_KEY)
    monkeypatch.setenv("META_TOKEN", "wrong-token-for-meta")
    runtime = RuntimeProject(tmp_path / "p", "duckdb")
    runtime.write_rules(RULES)
    rows = [person(i, status="paid", email=f"p{i}@example.com") for i in range(1, 6)]
    rows[2] = person(3, status="paid", email="not-an-email")
    rows.append(person(6, status="paid"))  # no email: skipped and counted
    runtime.load(make_tables(people=rows))
    runtime.run(D(2026, 1, 1))
    resend = FakeResend(RESEND_KEY, AUDIENCE)
    meta = FakeMetaAudience(META_TOKEN, META_AUDIENCE)
    try:
        add_actions(runtime, mirrors(resend, meta))
        result = {row[0]: row for row in run_dispatch(runtime.root).rows}
        assert result["resend_mirror"][4:6] == (4, 1) and result["resend_mirror"][8] == 1
        assert resend.emails() == {f"p{i}@example.com" for i in (1, 2, 4, 5)}
        failed = run_status(runtime.root)[1]
        by_action = {row[0]: [] for row in failed.rows}
        for row in failed.rows:
            by_action[row[0]].append(row)
        (invalid,) = by_action["resend_mirror"]
        assert invalid[4] == "3" and invalid[6] == 1  # refused once, not retried
        assert "HTTP 422" in invalid[7] and "Invalid `email` field" in invalid[7]
        assert {row[4] for row in by_action["meta_mirror"]} == {"1", "2", "3", "4", "5"}
        for row in by_action["meta_mirror"]:
            assert row[6] == 1 and "Invalid OAuth access token" in row[7]
            assert "wrong-token-for-meta" not in row[7]
        # With the right token, the parked changes go.
        monkeypatch.setenv("META_TOKEN", META_TOKEN)
        run_retry_failed(runtime.root, ["meta_mirror"])
        assert meta.hashes() == hashed({f"p{i}@example.com" for i in (1, 2, 4, 5)}) | {
            (meta_hash("email", "not-an-email"),)
        }
    finally:
        resend.stop()
        meta.stop()
        runtime.close()


def test_meta_identifiers_are_normalised_hashed_and_sent_10000_a_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (
        meta_hash("email", "  Foo.Bar@Example.COM ")
        == hashlib.sha256(b"foo.bar@example.com").hexdigest()
    )
    assert meta_hash("phone", "+1 (650) 555-1234") == hashlib.sha256(b"16505551234").hexdigest()
    assert meta_hash("email", None) == meta_hash("email", "  ") == ""
    monkeypatch.setenv("META_TOKEN", META_TOKEN)
    meta = FakeMetaAudience(META_TOKEN, META_AUDIENCE)
    try:
        raw = {"actions": [{"segment": "s", "mode": "mirror", "destination": "meta_custom_audience",
                            "audience_id": META_AUDIENCE, "token": "${META_TOKEN}",
                            "base_url": meta.base_url, "properties": ["email"]}]}  # fmt: skip
        (action,) = parse_actions(ProjectConfig(root=Path("."), raw=raw))
        sender = MetaCustomAudience(action, sleep=lambda s: None)
        records = [
            {"event_id": str(i), "person_id": str(i), "change": "enter",
             "properties": {"email": f"U{i}@Example.com"}}
            for i in range(25_001)
        ]  # fmt: skip
        outcomes = sender.send_batch(records)
        sender.close()
        assert all(o.delivered for o in outcomes)
        assert len(meta.requests) == 3 and meta.largest == 10_000
        assert len(meta.hashes()) == 25_001
    finally:
        meta.stop()


TABLES = """
[[actions]]
name = "ltv_table"
segment = "paid"
mode = "mirror"
destination = "table"
table = "marketing.paid_audience"
properties = ["email", "country"]
batch_size = 15

[[actions]]
name = "change_log"
segment = "paid"
on = "enter"
destination = "table"
table = "paid_enters"
batch_size = 15
"""


def test_table_destinations_mirror_and_append_exactly(project: RuntimeProject) -> None:
    add_actions(project, TABLES)
    crashed = dispatcher_process(project, "--quiet", SEGQL_DISPATCH_FAULT="after_send:3")
    crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    last = dispatcher_process(project, "--quiet")
    _, err = last.communicate(timeout=60)
    assert last.returncode == 0, err

    members = project.query(
        'SELECT "person_id", "entered_at" FROM {s}."segql_members" WHERE "segment" = \'paid\''
    )
    mirrored = project.query(
        'SELECT "person_id", "entered_at", "properties" FROM marketing.paid_audience'
    )
    assert sorted((r[0], r[1]) for r in mirrored) == sorted((r[0], r[1]) for r in members)
    assert '"country": "c3"' in mirrored[0][2]
    enters = project.query(
        'SELECT "event_id" FROM {s}."segql_history" '
        "WHERE \"segment\" = 'paid' AND \"change\" = 'enter'"
    )
    logged = project.query('SELECT "event_id" FROM paid_enters')
    assert sorted(logged) == sorted(enters)  # the batch sent before the kill is there once

    drift = connect(load_project(project.root).config)
    drift.query("DELETE FROM marketing.paid_audience WHERE person_id < '5'")
    drift.close()
    run_resync(project.root, "ltv_table")
    mirrored = project.query('SELECT "person_id", "entered_at" FROM marketing.paid_audience')
    assert sorted(mirrored) == sorted((r[0], r[1]) for r in members)


def test_table_destinations_on_postgres(postgres_server: Any, tmp_path: Path) -> None:
    runtime = RuntimeProject(tmp_path / "pg", "postgres", postgres_server.uri)
    try:
        runtime.write_rules(RULES)
        for step, day in enumerate((1, 2)):
            runtime.load(make_tables(people=people(step)))
            runtime.run(D(2026, 1, day))
        schema = runtime.segql_schema + "_out"
        add_actions(runtime, TABLES.replace("marketing.", f"{schema}.").replace(
            '"paid_enters"', f'"{schema}.paid_enters"'))  # fmt: skip
        run_dispatch(runtime.root)
        members = runtime.query(
            'SELECT "person_id" FROM {s}."segql_members" WHERE "segment" = \'paid\''
        )
        mirrored = runtime.query(f'SELECT "person_id" FROM "{schema}"."paid_audience"')
        assert sorted(mirrored) == sorted(members) and members
        enters = runtime.query(
            'SELECT "event_id" FROM {s}."segql_history" '
            "WHERE \"segment\" = 'paid' AND \"change\" = 'enter'"
        )
        assert sorted(runtime.query(f'SELECT "event_id" FROM "{schema}"."paid_enters"')) == sorted(
            enters
        )
        runtime.query(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        runtime.close()


def test_a_parked_add_made_moot_by_a_later_exit_is_not_resent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESEND_API_KEY", RESEND_KEY)
    monkeypatch.setenv("META_TOKEN", META_TOKEN)
    runtime = RuntimeProject(tmp_path / "p", "duckdb")
    runtime.write_rules(RULES)
    resend = FakeResend(RESEND_KEY, AUDIENCE)
    meta = FakeMetaAudience(META_TOKEN, META_AUDIENCE)
    try:
        add_actions(runtime, mirrors(resend, meta).replace("max_attempts = 12", "max_attempts = 1"))
        runtime.load(make_tables(people=[person(1, status="paid", email="p1@example.com")]))
        runtime.run(D(2026, 1, 1))
        resend.unavailable = {"p1@example.com"}
        run_dispatch(runtime.root, ["resend_mirror"])
        assert [row[4] for row in run_status(runtime.root)[1].rows] == ["1"]  # the add, parked
        runtime.load(make_tables(people=[person(1, status="free", email="p1@example.com")]))
        runtime.run(D(2026, 1, 2))
        run_dispatch(runtime.root, ["resend_mirror"])  # the exit: removed (404, not there)
        resend.unavailable = set()
        run_retry_failed(runtime.root, ["resend_mirror"])
        assert resend.emails() == set()  # sending the old add now would put them back
        assert run_status(runtime.root)[1].rows == []
        status = {row[0]: row for row in run_status(runtime.root)[0].rows}
        assert status["resend_mirror"][10] == 1  # recorded as skipped: superseded
    finally:
        resend.stop()
        meta.stop()
        runtime.close()


def test_resync_is_for_built_in_destinations(project: RuntimeProject) -> None:
    add_actions(
        project,
        '[[actions]]\nname = "f"\nsegment = "paid"\non = "enter"\nfile = { path = "f.jsonl" }\n',
    )
    with pytest.raises(SegqlError, match="--resync is for built-in destinations"):
        run_resync(project.root, "f")
