"""The commands that read recorded state: preview, history, stats, list, members."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from segql.cli import main


def segql(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reading") / "demo"
    code, _, err = segql("init", str(folder), "--people", "1500", "--anchor", "2026-11-01")
    assert code == 0, err
    for as_of in ("2026-10-15", "2026-11-01"):
        code, _, err = segql("--project", str(folder), "run", "--as-of", as_of, "-q")
        assert code == 0, err
    return folder


def test_preview_defaults_to_the_last_runs_as_of_and_says_so(demo: Path) -> None:
    condition = "status = 'paid' and did pricing_viewed within 7 days"
    code, out, _ = segql("--project", str(demo), "preview", condition)
    assert code == 0
    first = out.splitlines()[0]
    assert first.endswith("people match as of 2026-11-01 00:00:00")
    count = int(first.split()[0])
    assert count > 0  # the clock (after the data ends) would find nobody
    _, explicit, _ = segql("--project", str(demo), "preview", condition, "--as-of", "2026-11-01")
    assert explicit.splitlines()[0] == first
    _, earlier, _ = segql("--project", str(demo), "preview", condition, "--as-of", "2026-10-15")
    assert earlier.splitlines()[0].endswith("as of 2026-10-15 00:00:00")


def test_history_since_and_limit(demo: Path) -> None:
    project = ("--project", str(demo))
    _, out, _ = segql(*project, "history", "churn_risk", "--format", "json")
    every = json.loads(out)
    assert {row["commit_seq"] for row in every} == {1, 2}
    _, out, _ = segql(
        *project, "history", "churn_risk", "--since", "2026-11-01", "--format", "json"
    )
    later = json.loads(out)
    assert later == [row for row in every if row["commit_seq"] == 2]
    _, out, _ = segql(*project, "history", "churn_risk", "--limit", "3", "--format", "json")
    assert json.loads(out) == every[:3]


def test_stats_says_its_period_and_whether_the_initial_load_is_in_it(demo: Path) -> None:
    _, out, _ = segql("--project", str(demo), "stats", "--days", "30")
    assert out.rstrip().splitlines()[-1] == (
        "period: after 2026-10-02 00:00:00 up to 2026-11-01 00:00:00; "
        "'entered' includes the first run's initial load (2026-10-15)"
    )
    _, out, _ = segql("--project", str(demo), "stats", "--days", "7")
    assert out.rstrip().splitlines()[-1] == (
        "period: after 2026-10-25 00:00:00 up to 2026-11-01 00:00:00; "
        "the first run (2026-10-15) is before it and not counted"
    )


def test_list_shows_segments_and_traits_with_version_and_size(demo: Path) -> None:
    _, out, _ = segql("--project", str(demo), "list", "--format", "json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["power_users"]["title"] == "Power Users"
    assert rows["power_users"]["description"].startswith("10+ renders")
    assert rows["power_users"]["version"] == 1
    _, out, _ = segql("--project", str(demo), "members", "high_ltv", "--format", "json")
    assert rows["high_ltv"]["members"] == len(json.loads(out)) > 0
    assert rows["lifetime_value"]["kind"] == "trait"
    assert rows["lifetime_value"]["members"] is None


def test_members_ids_are_numbers_sorted_as_numbers(demo: Path) -> None:
    _, out, _ = segql("--project", str(demo), "members", "high_ltv", "--format", "json")
    ids = [row["person_id"] for row in json.loads(out)]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(ids) and len(ids) > 10
    assert ids != sorted(ids, key=str)  # text order would put 1000 before 2


def test_members_columns_of_people_and_traits(demo: Path) -> None:
    project = ("--project", str(demo))
    args = ("members", "high_ltv", "--columns", "email,plan,lifetime_value", "--format", "json")
    code, out, err = segql(*project, *args)
    assert code == 0, err
    rows = json.loads(out)
    assert list(rows[0]) == ["person_id", "entered_at", "run_id", "email", "plan", "lifetime_value"]
    assert all(row["lifetime_value"] >= 500 for row in rows)  # the segment's own rule
    some = rows[0]
    assert some["email"] in (None, f"user{some['person_id']}@example.com")
    code, _, err = segql(*project, "members", "high_ltv", "--columns", "emial")
    assert code != 0 and "did you mean 'email'" in err


def test_members_out_writes_the_file(demo: Path, tmp_path: Path) -> None:
    target = tmp_path / "high_ltv.csv"
    args = ("members", "high_ltv", "--format", "csv", "--out", str(target))
    code, out, _ = segql("--project", str(demo), *args)
    assert code == 0 and out == ""
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "person_id,entered_at,run_id"
    _, shown, _ = segql("--project", str(demo), "members", "high_ltv", "--format", "csv")
    assert lines == shown.splitlines()
