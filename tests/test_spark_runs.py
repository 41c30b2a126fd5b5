"""``segql run`` on Spark with Iceberg tables: the swap commit protocol (segql.runs.swap_commit).

One local SparkSession (tests/support/spark.py) and one Iceberg JDBC catalog on a local
PostgreSQL (tests/support/iceberg.py) serve the module; each test has its own project
schema and data namespace in it. Runs killed with SIGKILL and runs at once are ``segql``
subprocesses with their own session on the same catalog.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from segql.cli import main
from segql.errors import SegqlWarehouseError
from tests.support.engines import in_ci
from tests.support.iceberg import IcebergCatalog, missing, start_catalog
from tests.support.runtime import RuntimeProject
from tests.test_runs import EXPECTED_HISTORY, RULES_V1, RULES_V2, TABLES

D = datetime
_STATIC = ("spark.sql.extensions", "spark.jars")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IcebergCatalog]:
    pytest.importorskip("pyspark")
    reason = missing()
    if reason is not None:
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from tests.support.spark import spark_session

    lake = start_catalog(tmp_path_factory.mktemp("iceberg"))
    session = spark_session()
    for key, value in lake.settings().items():
        if key not in _STATIC:
            session.conf.set(key, value)
    try:
        yield lake
    finally:
        session.conf.unset("spark.sql.defaultCatalog")  # the query tests use the default
        lake.stop()


@pytest.fixture
def runtime(catalog: IcebergCatalog, tmp_path: Path) -> RuntimeProject:
    project = RuntimeProject(tmp_path / "project", "spark", spark=catalog.settings())
    project.write_rules(RULES_V1)
    project.load(TABLES)
    return project


def control_history(tmp_path: Path, days: tuple[int, ...]) -> RuntimeProject:
    control = RuntimeProject(tmp_path / "control", "duckdb")
    control.write_rules(RULES_V1)
    control.load(TABLES)
    for day in days:
        control.run(D(2026, 1, day))
    return control


def committed_seqs(runtime: RuntimeProject) -> list[int]:
    rows = runtime.query(
        'SELECT "commit_seq" FROM {s}."segql_runs" WHERE "status" = \'committed\' '
        'ORDER BY "commit_seq"'
    )
    return [int(r[0]) for r in rows]


def assert_sound(runtime: RuntimeProject) -> None:
    """No event recorded twice; commit_seq 1, 2, ... without a gap or a repeat."""
    duplicates = runtime.query(
        'SELECT "event_id" FROM {s}."segql_history" GROUP BY "event_id" HAVING COUNT(*) > 1'
    )
    assert duplicates == []
    seqs = committed_seqs(runtime)
    assert seqs == list(range(1, len(seqs) + 1))
    in_history = {int(r[0]) for r in runtime.query('SELECT "commit_seq" FROM {s}."segql_history"')}
    assert in_history <= set(seqs)


def test_history_scenario_on_spark(runtime: RuntimeProject) -> None:
    """The hand-written scenario of tests/test_runs.py, on Iceberg tables."""
    runtime.run(D(2026, 1, 10))
    runtime.run(D(2026, 1, 20))
    runtime.run(D(2026, 1, 30))
    runtime.write_rules(RULES_V2)
    runtime.run(D(2026, 2, 5))
    runtime.run(D(2026, 2, 20))
    assert runtime.history() == EXPECTED_HISTORY
    assert runtime.members() == {("engaged", "1")}
    intervals = runtime.query(
        'SELECT "segment", "person_id", "valid_from", "valid_to" FROM {s}."segql_intervals" '
        'ORDER BY "segment", "person_id", "valid_from"'
    )
    assert intervals[:2] == [
        ("active", "1", D(2026, 1, 10), D(2026, 1, 20)),
        ("active", "1", D(2026, 1, 30), D(2026, 2, 5)),
    ]
    assert ("engaged", "1", D(2026, 1, 30), None) in intervals
    versions = runtime.query(
        'SELECT "segment", "version", "retired_at" IS NULL FROM {s}."segql_segment_versions" '
        'ORDER BY "segment", "version"'
    )
    assert versions == [("active", 1, False), ("active", 2, True), ("engaged", 1, True),
                        ("paid", 1, False)]  # fmt: skip
    assert_sound(runtime)
    # The head's snapshot and the one it superseded, which the next run drops.
    snapshots = runtime.query(
        'SELECT DISTINCT "commit_seq" FROM {s}."segql_log" WHERE "kind" = \'member\''
    )
    assert sorted(r[0] for r in snapshots) == [4, 5]


def test_rerun_at_the_same_as_of_appends_nothing(runtime: RuntimeProject) -> None:
    first = runtime.run(D(2026, 1, 10))
    assert len(runtime.history()) == 4, first
    again = runtime.run(D(2026, 1, 10))
    assert (first.changes, again.changes) == (4, 0), (first, again)
    assert len(runtime.history()) == 4
    assert committed_seqs(runtime) == [1, 2]


def test_a_run_killed_at_each_step_leaves_the_same_history(
    runtime: RuntimeProject, tmp_path: Path
) -> None:
    """SIGKILL after the run's rows are written (before the swap), after the swap, and
    after the next run's clean-up and running row (before its diff), one run after the
    other on one project (each killed run is the next one's left-over); then the runs
    again: the history of runs never killed, no duplicate event_id, no gap or repeat in
    commit_seq, nothing left of a run that did not win, and the killed runs failed.
    One project for the three steps: every Spark statement costs a second or more."""
    runtime.run(D(2026, 1, 10))
    for step, visible in (("before_swap", 4), ("after_swap", 6), ("before_diff", 6)):
        killed = runtime.cli(
            "run", "--as-of", "2026-01-20", "-q", env={"SEGQL_FAULT": f"{step}:kill"}
        )
        assert killed.returncode == -signal.SIGKILL, (step, killed.stderr[-2000:])
        # after_swap: published before it died, so readers see it already
        assert len(runtime.history()) == visible, step
        assert_sound(runtime)
    runtime.run(D(2026, 1, 20))  # the published run at this as-of: appends nothing
    runtime.run(D(2026, 1, 30))
    control = control_history(tmp_path, (10, 20, 30))
    assert runtime.history() == control.history()
    assert runtime.members() == control.members()
    assert_sound(runtime)
    leftovers = runtime.query(
        'SELECT COUNT(*) FROM {s}."segql_log" WHERE "kind" <> \'run\' AND "run_id" NOT IN '
        '(SELECT "run_id" FROM {s}."segql_commits")'
    )
    assert leftovers == [(0,)]
    # A run killed before it readied its rows is failed once the head passed it.
    statuses = runtime.query('SELECT "status", "error" FROM {s}."segql_runs" ORDER BY "as_of"')
    assert sorted(status for status, _ in statuses) == ["committed"] * 4 + ["failed"] * 2
    assert all("recorded nothing" in error for status, error in statuses if status == "failed")


def test_two_runs_at_once_one_wins_the_other_records_nothing(
    runtime: RuntimeProject, tmp_path: Path
) -> None:
    runtime.run(D(2026, 1, 10))
    release = tmp_path / "release"
    fault = {"SEGQL_FAULT": f"before_swap:until={release}"}
    runs = [
        runtime.cli("run", "--as-of", "2026-01-20", "-q", env=fault, background=True)
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 500
        ready: list[tuple[object, ...]] = []
        while len(ready) < 2:  # both wrote their rows and wait before the swap
            assert time.monotonic() < deadline, "the two runs did not reach the swap"
            assert all(r.poll() is None for r in runs), [r.communicate() for r in runs]
            with contextlib.suppress(SegqlWarehouseError):  # a read while they write
                ready = runtime.query(
                    'SELECT "run_id" FROM {s}."segql_log" WHERE "kind" = \'run\' '
                    "AND \"status\" = 'ready'"
                )
            time.sleep(1)
        assert len(runtime.history()) == 4  # neither is visible yet
        release.touch()
        outcomes = [(r.wait(timeout=600), r.communicate()[1]) for r in runs]
    finally:
        release.touch()
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 1], outcomes
    (lost,) = [err for code, err in outcomes if code == 1]
    assert "another segql run committed first" in lost and "Traceback" not in lost
    control = control_history(tmp_path, (10, 20))
    assert runtime.history() == control.history()
    assert runtime.members() == control.members()
    assert_sound(runtime)
    statuses = sorted(r[0] for r in runtime.query('SELECT "status" FROM {s}."segql_runs"'))
    assert statuses == ["committed", "committed", "failed"]


def test_changes_and_dispatch_after_a_spark_run(runtime: RuntimeProject) -> None:
    with (runtime.root / "segql.toml").open("a") as toml:
        toml.write(
            '\n[[actions]]\nsegment = "paid"\non = "enter"\n'
            'file = { path = "exports/paid.jsonl" }\n'
        )
    runtime.run(D(2026, 1, 10))
    cli = CliRunner()
    project = ["--project", str(runtime.root)]
    changes = cli.invoke(main, [*project, "changes", "--since", "0", "--format", "json"])
    assert changes.exit_code == 0, changes.output
    assert len(json.loads(changes.stdout)) == 4
    dispatched = cli.invoke(main, [*project, "dispatch"])
    assert dispatched.exit_code == 0, dispatched.output
    lines = (runtime.root / "exports" / "paid.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["person_id"] for line in lines) == ["1", "3"]
    again = cli.invoke(main, [*project, "dispatch"])  # the cursor moved: nothing twice
    assert again.exit_code == 0, again.output
    assert len((runtime.root / "exports" / "paid.jsonl").read_text().splitlines()) == 2

    # Commands that rewrite published runs say they are not built on Spark, and change
    # nothing, instead of failing on Spark's own error about views.
    before = runtime.history()
    run_id = runtime.query('SELECT "run_id" FROM {s}."segql_runs"')[0][0]
    for command in (["retire-run", run_id], ["forget", "1"],
                    ["prune", "--history-before", "2026-01-05"]):  # fmt: skip
        refused = cli.invoke(main, [*project, *command])
        assert refused.exit_code == 1, refused.output
        assert "is not supported on spark yet" in refused.output
    assert runtime.history() == before


def test_a_project_of_the_four_log_layout_is_migrated(
    runtime: RuntimeProject, tmp_path: Path
) -> None:
    """A project whose run was recorded by segql's earlier layout (four logs and a
    ``committed`` row per run, plus a loser's rows) keeps its history, members and
    versions, and the next run continues it: commit_seq 2, the history of runs never
    migrated, the old logs gone."""
    from sqlglot import exp

    from tests.support.spark import spark_session

    control = control_history(tmp_path, (10,))
    (run_id,) = [r[0] for r in control.query('SELECT "run_id" FROM {s}."segql_runs"')]
    schema = runtime.segql_schema
    spark = spark_session()

    def table(name: str, columns: str, rows: list[tuple[object, ...]]) -> None:
        spark.sql(f"CREATE TABLE `{schema}`.`{name}` ({columns}) USING iceberg")
        values = exp.Values(
            expressions=[exp.Tuple(expressions=[literal(v) for v in row]) for row in rows]
        )
        spark.sql(f"INSERT INTO `{schema}`.`{name}` {values.sql('spark')}")

    def literal(value: object) -> exp.Expr:
        if value is None:
            return exp.null()
        if isinstance(value, datetime):
            return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
        if isinstance(value, int):
            return exp.Literal.number(value)
        return exp.Literal.string(str(value))

    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS `{schema}`")
    table("segql_head", "head STRING, commit_seq BIGINT, run_id STRING", [("head", 1, run_id)])
    day = D(2026, 1, 10)
    runs = "run_id STRING, as_of TIMESTAMP, started_at TIMESTAMP, finished_at TIMESTAMP, "
    runs += "status STRING, commit_seq BIGINT, error STRING, segments STRING, summary STRING, "
    runs += "mode STRING, full_reason STRING, recorded_at TIMESTAMP"
    run_rows = [
        (run_id, day, day, None, "running", None, None, "[]", None, None, None, day),
        *((who, day, None, day, status, 1, None, "[]", "{}", "full", None, day)
          for who, status in ((run_id, "ready"), (run_id, "committed"), ("loser", "ready"))),
    ]  # fmt: skip
    table("segql_runs_log", runs, run_rows)
    history = control.query(
        'SELECT "event_id", "segment", "person_id", "change", "as_of", "run_id", '
        '"commit_seq", "version", "reason" FROM {s}."segql_history"'
    )
    lost = [("x", "paid", "9", "enter", day, "loser", 1, 1, "rules")]
    table("segql_history_log", "event_id STRING, segment STRING, person_id STRING, "
          "change STRING, as_of TIMESTAMP, run_id STRING, commit_seq BIGINT, version INT, "
          "reason STRING", [*history, *lost])  # fmt: skip
    members = control.query(
        'SELECT "segment", "person_id", "entered_at", "entered_run_id" FROM {s}."segql_members"'
    )
    table("segql_members_log", "segment STRING, person_id STRING, entered_at TIMESTAMP, "
          "entered_run_id STRING, run_id STRING, commit_seq BIGINT",
          [(*m, run_id, 1) for m in members])  # fmt: skip
    versions = control.query(
        'SELECT "segment", "version", "definition_hash", "source_text", "created_at", '
        '"retired_at" FROM {s}."segql_segment_versions"'
    )
    table("segql_segment_versions_log", "segment STRING, version INT, definition_hash STRING, "
          "source_text STRING, created_at TIMESTAMP, retired_at TIMESTAMP, run_id STRING, "
          "commit_seq BIGINT", [(*v, run_id, 1) for v in versions])  # fmt: skip
    for view in ("segql_runs", "segql_history", "segql_members", "segql_segment_versions",
                 "segql_commits", "segql_intervals"):  # fmt: skip
        spark.sql(f"CREATE VIEW `{schema}`.`{view}` AS SELECT 1 AS old")

    runtime.run(D(2026, 1, 20))
    control.run(D(2026, 1, 20))
    assert runtime.history() == control.history()
    assert runtime.members() == control.members()
    assert_sound(runtime)
    assert committed_seqs(runtime) == [1, 2]
    tables = {r[1] for r in spark.sql(f"SHOW TABLES IN `{schema}`").collect()}
    assert not tables & {"segql_runs_log", "segql_history_log", "segql_members_log",
                         "segql_segment_versions_log"}  # fmt: skip
    statuses = dict(runtime.query('SELECT "run_id", "status" FROM {s}."segql_runs"'))
    assert statuses[run_id] == "committed" and statuses["loser"] == "failed"


# --- without a session -----------------------------------------------------------------


def test_spark_urls_reach_the_session_adapter() -> None:
    from segql.engines import ENGINES, SparkAdapter, SparkSessionAdapter, dialect_of_url

    assert ENGINES["spark"] is ENGINES["sc"] is SparkSessionAdapter
    assert ENGINES["databricks"] is SparkAdapter and not SparkAdapter.RUNS
    assert SparkSessionAdapter.RUNS and SparkSessionAdapter.COMMIT_PROTOCOL == "swap"
    assert dialect_of_url("spark://local") == dialect_of_url("sc://host:15002") == "spark"


def test_warehouse_spark_settings_go_to_the_builder_as_text(tmp_path: Path) -> None:
    from segql.config import config_from_dict
    from segql.engines.spark import builder_settings

    raw = {
        "events": {},
        "warehouse": {
            "url": "spark://local",
            "spark": {"spark.sql.shuffle.partitions": 4, "spark.ui.enabled": False,
                      "spark.sql.session.timeZone": "Europe/Paris"},
        }
    }  # fmt: skip
    settings = config_from_dict(raw, tmp_path).warehouse.spark
    assert settings == {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false",
                        "spark.sql.session.timeZone": "Europe/Paris"}  # fmt: skip
    built = builder_settings("spark://local", settings)
    assert built["spark.sql.session.timeZone"] == "Europe/Paris"  # the user's wins
    assert built["spark.ui.showConsoleProgress"] == "false"
    if missing() is None:
        assert "iceberg-spark-runtime-3.5_2.12-1.9.2.jar" in built["spark.jars"]
    remote = builder_settings("sc://host:15002", settings)
    assert "spark.jars" not in remote  # a Connect server has its own jars


def test_an_iceberg_jar_with_another_hash_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from segql.engines import spark
    from segql.errors import SegqlWarehouseError

    if spark.iceberg_jar() is None:
        if in_ci():
            pytest.fail("the Iceberg runtime jar is not installed", pytrace=False)
        pytest.skip("the Iceberg runtime jar is not installed")
    monkeypatch.setattr(spark, "ICEBERG_JAR_SHA256", "0" * 64)
    with pytest.raises(SegqlWarehouseError, match="SHA-256"):
        spark.iceberg_jar()


def test_scratch_table_statements_become_cached_views() -> None:
    """DELETE, INSERT and UPDATE of a run's scratch table make a new cached view from the
    last one; other statements read the last one under the name they used."""
    import sqlglot

    from segql.engines.spark import SparkTempTables

    temps = SparkTempTables(None)  # type: ignore[arg-type]
    token = temps.token

    def spark_sql(sql: str) -> list[str]:
        statement = sqlglot.parse_one(sql, read="spark")
        return [s.sql("spark") for s in temps.translate(statement)]

    created = spark_sql("CREATE TEMPORARY TABLE t AS SELECT 1 AS a")
    assert created == [f"CACHE TABLE `t__{token}_1` AS SELECT 1 AS a"]
    deleted = spark_sql("DELETE FROM t WHERE t.a = 2")
    assert deleted == [
        f"CACHE TABLE `t__{token}_2` AS SELECT * FROM `t__{token}_1` AS `t` "
        "WHERE NOT COALESCE(t.a = 2, FALSE)"
    ]
    inserted = spark_sql("INSERT INTO t (a) SELECT 3")
    assert inserted == [
        f"CACHE TABLE `t__{token}_3` AS SELECT `a` FROM `t__{token}_2` AS `t` UNION ALL SELECT 3"
    ]
    read = spark_sql("SELECT a FROM t AS x JOIN lake.t AS y ON x.a = y.a")
    assert read == [f"SELECT a FROM `t__{token}_3` AS x JOIN lake.t AS y ON x.a = y.a"]
    dropped = spark_sql("DROP TABLE IF EXISTS t")
    assert dropped == [f"DROP VIEW IF EXISTS `t__{token}_{n}`" for n in (3, 2, 1)]
    assert spark_sql("DROP TABLE IF EXISTS t") == []  # gone; never a table of the lake
