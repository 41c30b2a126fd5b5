"""Spark (Databricks) executed for real: PySpark in local mode, one SparkSession for all.

Every scenario of tests/test_engines_agree.py runs on Spark and must agree with the
reference evaluator (and with the hand-written answers). Spark has no transactions, so
``segql run`` is not supported there: the supported path is ``segql compile --dialect
spark`` (or the dbt models), and the tests below hold that path to the reference too.

Without pyspark or Java these tests skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from segql.cli import main
from segql.engines import adapter_for_dialect
from segql.errors import SegqlError
from tests.support.engines import in_ci
from tests.support.scenario import make_project, run_reference, run_sql
from tests.test_engines_agree import SCENARIOS, T


def _spark_missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -e '.[test]')"
    if shutil.which("java") is None and not _java_home():
        return "no Java runtime (Spark needs Java 17 or later)"
    return None


def _java_home() -> bool:
    import os

    return bool(os.environ.get("JAVA_HOME"))


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    """A SparkEngine on the process's one SparkSession (started once, reused)."""
    reason = _spark_missing()
    if reason is not None:
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from tests.support.spark import SparkEngine

    engine = SparkEngine()
    try:
        yield engine
    finally:
        engine.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_spark_matches_reference(spark, name: str) -> None:
    case = SCENARIOS[name]
    project = make_project(case.rules, timezone=case.timezone)
    spark.load(case.tables)
    from_sql = run_sql(spark, project, case.as_of)
    from_reference = run_reference(project, case.tables, case.as_of)
    assert from_sql == from_reference
    if case.expected is not None:
        assert {k: from_sql[k] for k in case.expected} == case.expected


COMPILE_RULES = """
trait spend = sum(purchase.amount)
segment buyers where did purchase within 30 days
segment big where spend >= 50 and status = 'paid'
"""


def _write_project(root: Path) -> None:
    """A project whose warehouse is DuckDB, used only for the catalog: compile reads the
    table layout from it; the SQL then runs on Spark against the same rows."""
    import duckdb

    (root / "segments").mkdir()
    (root / "segments" / "rules.segql").write_text(COMPILE_RULES)
    (root / "segql.toml").write_text(
        "[warehouse]\n"
        'url = "duckdb:///warehouse.duckdb"\n'
        'schema = "segql"\n'
        'timezone = "UTC"\n\n'
        "[entity]\n"
        'table = "people"\n'
        'id = "person_id"\n\n'
        "[events]\n"
        'table = "events"\n'
        'person = "person_id"\n'
        'name = "event_type"\n'
        'time = "occurred_at"\n'
        'properties = "properties"\n'
    )
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("CREATE TABLE people (person_id BIGINT, status VARCHAR)")
    con.execute(
        "CREATE TABLE events (person_id BIGINT, event_type VARCHAR, occurred_at TIMESTAMP, "
        "properties JSON, amount DOUBLE)"
    )
    con.close()


def test_segql_compile_for_spark_runs_on_spark(spark, tmp_path: Path) -> None:
    """The supported path on Spark: ``segql compile --dialect spark``, run by the user (or
    dbt) on Spark, gives the reference's members."""
    from tests.support.engines import Table

    _write_project(tmp_path)
    as_of = T
    result = CliRunner().invoke(
        main,
        [
            "--project",
            str(tmp_path),
            "compile",
            "--dialect",
            "spark",
            "--as-of",
            as_of.strftime("%Y-%m-%d %H:%M:%S"),
        ],
    )
    assert result.exit_code == 0, result.output
    sql = result.stdout.strip().rstrip(";")
    tables = {
        "people": Table(
            (("person_id", "integer"), ("status", "text")),
            ((1, "paid"), (2, "paid"), (3, "free"), (4, None)),
        ),
        "events": Table(
            (
                ("person_id", "integer"),
                ("event_type", "text"),
                ("occurred_at", "timestamp"),
                ("properties", "json"),
                ("amount", "double"),
            ),
            (
                (1, "purchase", datetime(2026, 3, 1, 9, 30), None, 40.0),
                (1, "purchase", datetime(2025, 1, 1), {"k": 1}, 20.0),
                (2, "purchase", datetime(2026, 3, 15, 12, 0, 1), None, 500.0),  # after T
                (3, "purchase", datetime(2026, 3, 14), None, 80.0),
                (4, "login", datetime(2026, 3, 14), None, None),
            ),
        ),
    }
    spark.load(tables)
    found: dict[str, set[int]] = {"buyers": set(), "big": set()}
    for segment, person_id in spark.query(sql):
        found[segment].add(person_id)
    project = make_project(COMPILE_RULES)
    assert found == run_reference(project, tables, as_of)
    assert found == {"buyers": {1, 3}, "big": {1}}


def test_compiled_bind_parameter_runs_on_spark(spark) -> None:
    """Without ``--as-of`` the time is Spark's named parameter ``:as_of``."""
    project = make_project(COMPILE_RULES)
    sql = project.compile(dialect="spark", as_of=None)
    assert ":as_of" in sql
    case = SCENARIOS["window edges, rows after T, unknown and null people"]
    spark.load(case.tables)
    rows = spark.session.sql(sql, args={"as_of": T}).collect()  # type: ignore[attr-defined]
    assert rows == [] or all(r[0] in ("buyers", "big") for r in rows)
    expected = run_sql(spark, project, T)
    got: dict[str, set[int]] = {"buyers": set(), "big": set()}
    for segment, person_id in rows:
        got[segment].add(person_id)
    assert got == expected


def test_spark_dialect_does_not_run() -> None:
    """Spark through SQLAlchemy (databricks://, hive://) has no BEGIN/COMMIT and no swap
    commit, so that engine says segql run may not use it (a SparkSession may)."""
    assert adapter_for_dialect("spark").RUNS is False
    assert all(adapter_for_dialect(d).RUNS for d in ("duckdb", "postgres", "snowflake"))


def test_segql_run_refuses_spark() -> None:
    """``segql run`` against Spark through SQLAlchemy fails with one clear message, before
    any statement reaches the warehouse."""
    from segql.runs.runner import Runner

    class NoStatements:
        def execute(self, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
            raise AssertionError("segql run sent a statement to Spark")

        def reflect_columns(self, table: str) -> None:
            raise AssertionError("segql run read Spark's catalog")

        def close(self) -> None:
            pass

    project = make_project(COMPILE_RULES)
    with pytest.raises(SegqlError, match="compile"):
        Runner(project, adapter_for_dialect("spark")(NoStatements())).run(as_of=T)


def test_spark_reads_nan_as_null(spark) -> None:
    """NaN in a numeric column is null on Spark too (semantics.md)."""
    from tests.test_json_data import test_nan_is_null_on_every_engine_and_the_reference

    test_nan_is_null_on_every_engine_and_the_reference(spark)


def test_spark_reads_odd_json_keys(spark) -> None:
    """Keys with quotes, dots, brackets, ``$`` and backslashes: the key named, on Spark."""
    from tests.test_json_data import test_odd_json_keys_read_the_key_named

    inner = test_odd_json_keys_read_the_key_named.hypothesis.inner_test
    # A single quote, ``*`` and ``']`` are what GET_JSON_OBJECT's ``$['...']`` cannot name.
    inner(spark, ['a"b', "a.b", "$x", "a[0]", "a b", "~/", "a\\b", "a'b", "*", "x']y", "a`b"])


def test_spark_reads_the_last_of_a_duplicate_json_key(spark) -> None:
    """``{"plan": "free", "plan": "pro"}`` is plan "pro" on Spark, as on DuckDB, PostgreSQL
    and in the reference (GET_JSON_OBJECT read the first)."""
    from tests.test_json_data import test_a_duplicate_json_key_reads_its_last_value

    test_a_duplicate_json_key_reads_its_last_value(spark)
