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
