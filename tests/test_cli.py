"""The command line as a user meets it: the demo, compile, check, fmt, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from segql.cli import main
from segql.language.parser import parse


def segql(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "demo"
    code, _, err = segql("init", str(folder), "--people", "2000", "--anchor", "2026-11-01")
    assert code == 0, err
    return folder


def test_demo_runs_and_records_changes(demo: Path) -> None:
    code, out, _ = segql("--project", str(demo), "run", "--as-of", "2026-10-01", "-q")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header == ["segment", "members", "entered", "exited"]
    # The run's time is said once, in the line under the table, not on every row.
    assert out.count(" s (all segments in one query)") == 1
    code, out, _ = segql(
        "--project", str(demo), "run", "--as-of", "2026-11-01", "-q", "--format", "json"
    )
    rows = json.loads(out)
    assert {r["segment"] for r in rows} >= {"power_users", "high_ltv", "rfm_champions"}
    assert sum(r["entered"] + r["exited"] for r in rows) > 0
    code, out, _ = segql("--project", str(demo), "changes", "--since", "1", "--format", "json")
    later = json.loads(out)
    assert later and all(c["commit_seq"] == 2 for c in later)
    assert len(later) == sum(r["entered"] + r["exited"] for r in rows)


def test_demo_is_deterministic(tmp_path: Path) -> None:
    counts = []
    for name in ("a", "b"):
        segql("init", str(tmp_path / name), "--people", "300", "--anchor", "2026-11-01")
        connection = duckdb.connect(str(tmp_path / name / "warehouse.duckdb"), read_only=True)
        rows = connection.execute(
            "SELECT count(*), sum(hash(person_id, event_type, occurred_at)) FROM events"
        ).fetchone()
        counts.append(rows)
        connection.close()
    assert counts[0] == counts[1]


def test_compile_each_dialect_and_as_of(demo: Path) -> None:
    for dialect in ("duckdb", "postgres", "snowflake"):
        code, out, err = segql("--project", str(demo), "compile", "high_ltv", "-d", dialect)
        assert code == 0, err
        assert "high_ltv" in out and out.rstrip().endswith(";")
    code, out, _ = segql("--project", str(demo), "compile", "--as-of", "2026-01-02T03:04:05")
    assert "2026-01-02 03:04:05" in out


def test_check_passes_on_the_demo_and_warns_of_unseen_events(demo: Path) -> None:
    code, out, _ = segql("--project", str(demo), "check")
    assert code == 0 and out.startswith("ok:")
    extra = demo / "segments" / "zz_extra.segql"
    extra.write_text("segment ghosts where did ghost_event within 7 days\n")
    try:
        code, _, err = segql("--project", str(demo), "check")
        assert code == 0
        assert "zz_extra.segql:1:26: warning: event 'ghost_event' does not occur" in err
    finally:
        extra.unlink()


def test_misspelled_event_names_point_at_the_name_and_suggest(demo: Path) -> None:
    extra = demo / "segments" / "zz_typo.segql"
    extra.write_text("# buyers\nsegment buyers where did purchse within 7 days\n")
    try:
        code, out, err = segql("--project", str(demo), "check")
        assert code == 0 and out.startswith("ok:")
        assert "zz_typo.segql:2:26: warning: event 'purchse' does not occur" in err
        assert "did you mean 'purchase'?" in err
        assert "segment buyers where did purchse within 7 days" in err
        assert " " * 25 + "^^^^^^^" in err
        code, _, err = segql("--project", str(demo), "check", "--strict")
        assert code == 1 and "error: event 'purchse'" in err
        code, _, err = segql("--project", str(demo), "run", "--as-of", "2026-11-02", "-q")
        assert code == 0 and "warning: event 'purchse'" in err
        runs = segql("--project", str(demo), "changes", "--format", "json")[1]
        code, _, err = segql(
            "--project", str(demo), "run", "--as-of", "2026-11-03", "-q", "--strict"
        )
        assert code == 1 and "error: event 'purchse'" in err
        # Nothing ran: the feed is as it was.
        assert segql("--project", str(demo), "changes", "--format", "json")[1] == runs
    finally:
        extra.unlink()


def test_errors_are_one_message_without_traceback(demo: Path, tmp_path: Path) -> None:
    bad = demo / "segments" / "zz_bad.segql"
    bad.write_text("segment typo where staus = 'paid'\n")
    try:
        code, _, err = segql("--project", str(demo), "check")
    finally:
        bad.unlink()
    assert code == 1
    assert "unknown property 'staus': did you mean 'status'?" in err
    assert "zz_bad.segql:1:20" in err and "^^^^^" in err
    assert "Traceback" not in err
    code, _, err = segql("--project", str(demo), "compile", "nope")
    assert code == 1 and "unknown segment 'nope'" in err
    code, _, err = segql("--project", str(tmp_path), "run")
    assert code == 1 and "segql.toml" in err
    code, _, err = segql("--project", str(demo), "run", "--as-of", "yesterday-ish")
    assert code == 1 and "not a time" in err


def test_fmt_rewrites_files_keeping_comments(tmp_path: Path) -> None:
    path = tmp_path / "x.segql"
    path.write_text("# keep me\nSEGMENT a   WHERE  x=1 AND (y>2)  -- and me\n")
    code, out, _ = segql("fmt", "--check", str(path))
    assert code == 1 and "would reformat" in out
    code, _, _ = segql("fmt", str(path))
    assert code == 0
    assert path.read_text() == "# keep me\n-- and me\nsegment a\n  where x = 1 and y > 2\n"
    code, out, _ = segql("fmt", "-", input="segment b where did x\n")
    assert out == "segment b\n  where did x\n"


def test_read_commands_before_any_run_say_so(tmp_path: Path) -> None:
    segql("init", str(tmp_path / "fresh"), "--people", "50")
    code, _, err = segql("--project", str(tmp_path / "fresh"), "members", "high_ltv")
    assert code == 1 and "has not run" in err


def test_preview_counts_without_writing(demo: Path) -> None:
    code, out, _ = segql(
        "--project", str(demo), "preview", "status = 'paid'", "--as-of", "2026-11-01",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    answer = json.loads(out)[0]
    connection = duckdb.connect(str(demo / "warehouse.duckdb"), read_only=True)
    paid = connection.execute("SELECT count(*) FROM people WHERE status = 'paid'").fetchone()
    connection.close()
    assert answer["matching"] == paid[0]


def test_templates_use_writes_a_segment_that_runs(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    segql("init", str(folder), "--people", "300", "--anchor", "2026-11-01")
    code, out, err = segql(
        "--project", str(folder), "templates", "use", "churn_risk",
        "--param", "days=21", "--param", "name=quiet_users",
    )  # fmt: skip
    assert code == 0, err
    assert "quiet_users" in (folder / "segments" / "churn_risk.segql").read_text()
    code, out, err = segql("--project", str(folder), "run", "-q", "--format", "json")
    assert code == 0, err
    assert "quiet_users" in {row["segment"] for row in json.loads(out)}
    code, _, err = segql("--project", str(folder), "templates", "use", "churn_risk")
    assert code == 1 and "already has: churn_risk" in err  # same names again: refused
    code, _, err = segql("--project", str(folder), "templates", "use", "rfm")
    assert code == 0, err  # the demo's own RFM scores do not clash with the template's
    code, _, err = segql("templates", "use", "power_users", "--param", "count=lots", "--stdout")
    assert code == 1 and "count" in err


def test_import_prints_segql_that_parses(tmp_path: Path) -> None:
    examples = Path(__file__).parents[2] / "shared" / "spec" / "import-examples.json"
    if not examples.exists():
        pytest.skip(f"{examples} is not beside this checkout")
    code, out, err = segql("import", str(examples))
    assert code == 0, err
    names = [d.name for d in parse(out).definitions]
    assert "power_users" in names and "high_engagers" in names
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "rules": [{"condition": "telepathy"}]}')
    code, _, err = segql("import", str(bad))
    assert code == 1 and "condition" in err and "Traceback" not in err
