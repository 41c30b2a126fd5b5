"""``segql dbt generate``: the generated models built by real dbt (dbt-duckdb) agree with
``segql run`` on the same data.

The scenario copies ``examples/dbt`` (a segql project and a dbt project), fills a DuckDB
warehouse with the demo generator and gives segql its own copy of it. dbt builds at two
as-of times, segql runs at the same two; membership, per-segment models and the
enter/exit history must match row for row. The tests marked ``dbt`` run ``dbt build``
in a subprocess (no network: the project has no packages); CI runs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import jinja2
import pytest

import segql
from segql.downstream.dbt import SCHEMA_FILE, SOURCES_FILE, _escape_jinja, dbt_config, generate_dbt
from segql.engines import connect
from segql.errors import SegqlConfigError, SegqlError
from segql.project import Project
from segql.runs.runner import Runner
from segql.starters.demo import generate_demo_warehouse
from tests.support.engines import in_ci

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dbt"
AS_OF_1, AS_OF_2 = datetime(2026, 10, 15), datetime(2026, 11, 1)
# A rule literal that reads like Jinja: the model must pass it to SQL untouched.
CURLY_SEGMENT = """\
segment paid_curly
  title "Paid {{ not jinja }}"
  where status = 'paid' and email != '{{ x }} {% y %} {# z #}'
"""

# Conditions on recorded membership: the models read the history model as the builds
# before left it, segql its own history; both must give the same members.
RECORDED_SEGMENT = """\
segment engaged_before
  where member of engaged for 10 days or exited engaged within 30 days or ever in engaged_before
"""


def dbt_executable() -> Path:
    """The dbt of this virtual environment; missing fails in CI and skips elsewhere."""
    path = Path(sys.executable).with_name("dbt")
    if not path.exists():
        reason = "dbt is not installed: pip install -e '.[test]'"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def make_example(folder: Path, people: int = 400) -> tuple[Path, Path, Path]:
    """examples/dbt copied into ``folder`` with a warehouse for dbt and a copy for segql.

    Returns the segql project of dbt's warehouse, segql's own project, and the dbt project.
    """
    shutil.copytree(EXAMPLE, folder / "dbt_side")
    segql_side = folder / "dbt_side" / "segql"
    (segql_side / "segments" / "curly.segql").write_text(CURLY_SEGMENT, encoding="utf-8")
    (segql_side / "segments" / "recorded.segql").write_text(RECORDED_SEGMENT, encoding="utf-8")
    generate_demo_warehouse(segql_side / "warehouse.duckdb", people=people, anchor=AS_OF_2.date())
    shutil.copytree(segql_side, folder / "segql_side")
    dbt_project = folder / "dbt_side" / "dbt_project"
    (dbt_project / "profiles.yml").write_text(
        "segql_example:\n"
        "  target: dev\n"
        "  outputs:\n"
        "    dev:\n"
        "      type: duckdb\n"
        f"      path: {str(segql_side / 'warehouse.duckdb')!r}\n"
        "      schema: main\n"
        "      threads: 1\n",
        encoding="utf-8",
    )
    return segql_side, folder / "segql_side", dbt_project


def dbt_build(
    dbt_project: Path, as_of: str, command: tuple[str, ...] = ("build",)
) -> subprocess.CompletedProcess[str]:
    """``dbt build`` (or another command) at an as-of, in a subprocess, offline."""
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_USE_COLORS": "false"}
    command = (
        str(dbt_executable()), *command, "--project-dir", str(dbt_project),
        "--profiles-dir", str(dbt_project), "--vars", f"{{segql_as_of: '{as_of}'}}",
    )  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def query(database: Path, sql: str) -> list[tuple]:
    connection = duckdb.connect(str(database), read_only=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def segql_run(project_dir: Path, as_of: datetime) -> None:
    project = segql.load_project(project_dir)
    warehouse = connect(project.config)
    try:
        Runner(project, warehouse).run(None, as_of)
    finally:
        warehouse.close()


@dataclass
class Scenario:
    """What the builds and runs left behind, read once for every test of the module."""

    files: list[Path]
    builds: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    dbt_members: list[set[tuple[str, str]]] = field(default_factory=list)
    segql_members: list[set[tuple[str, str]]] = field(default_factory=list)
    per_segment: dict[str, set[str]] = field(default_factory=dict)
    dbt_history: list[tuple] = field(default_factory=list)
    segql_history: list[tuple] = field(default_factory=list)
    engaged_without_memory: set[str] = field(default_factory=set)
    history_rows_before_rebuild: int = 0
    rebuild: subprocess.CompletedProcess[str] | None = None
    history_rows_after_rebuild: int = 0
    earlier: subprocess.CompletedProcess[str] | None = None


HISTORY_COLUMNS = "segment, person_id, change, as_of, reason, version"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    dbt_executable()
    folder = tmp_path_factory.mktemp("dbt")
    dbt_segql, own_segql, dbt_project = make_example(folder)
    files = generate_dbt(segql.load_project(dbt_segql), dbt_project / "models" / "segql")
    result = Scenario(files)
    dbt_db, segql_db = dbt_segql / "warehouse.duckdb", own_segql / "warehouse.duckdb"
    for as_of in (AS_OF_1, AS_OF_2):
        build = dbt_build(dbt_project, as_of.isoformat())
        result.builds.append(build)
        assert build.returncode == 0, build.stdout[-6000:] + build.stderr[-3000:]
        rows = query(dbt_db, "SELECT segment, person_id FROM main.segql_membership")
        result.dbt_members.append(set(rows))
        segql_run(own_segql, as_of)
        rows = query(segql_db, "SELECT segment, person_id FROM segql.segql_members")
        result.segql_members.append(set(rows))
    # Who `engaged` (enter/exit rules) would hold at the second as-of if nobody's earlier
    # membership counted: the models must differ from it, or the test proves nothing.
    project = segql.load_project(own_segql)
    sql = project.membership_query("duckdb", AS_OF_2, ["engaged"]).sql
    result.engaged_without_memory = {str(row[1]) for row in query(segql_db, sql)}
    for name in project.segment_names:
        rows = query(dbt_db, f"SELECT person_id FROM main.segql_segment_{name}")
        result.per_segment[name] = {row[0] for row in rows}
    result.dbt_history = query(dbt_db, f"SELECT {HISTORY_COLUMNS} FROM main.segql_history")
    result.segql_history = query(segql_db, f"SELECT {HISTORY_COLUMNS} FROM segql.segql_history")
    result.history_rows_before_rebuild = len(result.dbt_history)
    models = ("run", "--select", "segql_membership", "segql_history")
    result.rebuild = dbt_build(dbt_project, AS_OF_2.isoformat(), models)
    count = "SELECT count(*) FROM main.segql_history"
    result.history_rows_after_rebuild = query(dbt_db, count)[0][0]
    result.earlier = dbt_build(dbt_project, AS_OF_1.isoformat(), models)
    return result


@pytest.mark.dbt
def test_membership_model_equals_segql_run(scenario: Scenario) -> None:
    """At each as-of, segql_membership holds exactly segql's current members."""
    for dbt_members, segql_members in zip(
        scenario.dbt_members, scenario.segql_members, strict=True
    ):
        assert dbt_members == segql_members
    segments = {segment for segment, _ in scenario.dbt_members[1]}
    # The comparison means something: most segments have members, hysteresis included.
    assert {"engaged", "power_users", "big_subscribers", "paid_curly"} <= segments
    # ... and the one that reads the recorded history has members only at the second
    assert "engaged_before" in segments
    assert "engaged_before" not in {segment for segment, _ in scenario.dbt_members[0]}
    assert len(scenario.dbt_members[1]) > 100
    engaged = {person for segment, person in scenario.dbt_members[1] if segment == "engaged"}
    assert engaged != scenario.engaged_without_memory  # members stayed by `exit when`


@pytest.mark.dbt
def test_segment_models_hold_their_segment(scenario: Scenario) -> None:
    """Each segql_segment_<name> view is that segment's rows of the membership."""
    members = scenario.segql_members[1]
    for name, people in scenario.per_segment.items():
        assert people == {person for segment, person in members if segment == name}, name


@pytest.mark.dbt
def test_history_model_equals_segql_history(scenario: Scenario) -> None:
    """Two builds at two as-of times append the same enter/exit rows as two segql runs."""
    assert Counter(scenario.dbt_history) == Counter(scenario.segql_history)
    changes = Counter((row[2], row[3]) for row in scenario.dbt_history)
    assert changes[("exit", AS_OF_2)] > 0 and changes[("enter", AS_OF_2)] > 0


@pytest.mark.dbt
def test_history_only_moves_forward(scenario: Scenario) -> None:
    """Building again at the same as-of appends nothing; an earlier as-of is refused."""
    assert scenario.rebuild is not None and scenario.rebuild.returncode == 0
    assert scenario.history_rows_after_rebuild == scenario.history_rows_before_rebuild
    assert scenario.earlier is not None and scenario.earlier.returncode != 0
    assert "history only moves forward" in scenario.earlier.stdout


@pytest.mark.dbt
def test_dbt_tests_ran_and_passed(scenario: Scenario) -> None:
    """The schema.yml tests are real: dbt ran them on every build, without warnings."""
    for build in scenario.builds:
        assert "unique_segql_history_event_id" in build.stdout
        assert "ERROR=0" in build.stdout and "WARN=0" in build.stdout
        assert "Deprecat" not in build.stdout, build.stdout[-3000:]


# --- without dbt ---------------------------------------------------------------------


def project_with(tmp_path: Path, dbt_section: str) -> Project:
    """The example's segql project with its [dbt] section replaced (no warehouse)."""
    shutil.copytree(EXAMPLE / "segql", tmp_path / "segql")
    config = tmp_path / "segql" / "segql.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text[: text.index("\n[dbt]\n") + 1] + dbt_section, encoding="utf-8")
    return segql.load_project(tmp_path / "segql")


def test_generated_files_and_sources(tmp_path: Path) -> None:
    """Without a [dbt] section every table is a source of the generated segql_warehouse."""
    project = project_with(tmp_path, "")
    out = tmp_path / "models"
    stale = out / "segql_segment_gone.sql"
    out.mkdir()
    stale.write_text("{# generated by segql dbt generate: old #}\n", encoding="utf-8")
    mine = out / "segql_segment_mine.sql"
    mine.write_text("select 1\n", encoding="utf-8")
    names = {path.name for path in generate_dbt(project, out)}
    assert {"segql_membership.sql", "segql_history.sql", SCHEMA_FILE, SOURCES_FILE} <= names
    assert "segql_segment_engaged.sql" in names
    assert not stale.exists() and mine.exists()  # only segql's own stale files go
    sources = (out / SOURCES_FILE).read_text(encoding="utf-8")
    assert '- name: "segql_warehouse"' in sources and '"{{ target.schema }}"' in sources
    for table in ("people", "events", "subscriptions"):
        assert f'- name: "{table}"' in sources
    membership = (out / "segql_membership.sql").read_text(encoding="utf-8")
    assert "{{ source('segql_warehouse', 'events') }}" in membership


def test_dbt_section_is_checked(tmp_path: Path) -> None:
    """Every mistake in [dbt] is one clear error, before anything is written."""
    bad = {
        '[dbt]\ncolour = "red"\n': "unknown key 'colour'",
        "[dbt.tables]\nnope = { ref = 'x' }\n": "does not name",
        "[dbt.tables]\nevents = { model = 'x' }\n": "must be",
        "[dbt]\nsegment_models = 'yes'\n": "true or false",
        "[dbt]\ndialect = 'cobol'\n": "unknown dialect",
    }
    for number, (section, message) in enumerate(bad.items()):
        # segql.toml is checked whole when read; [dbt]'s own checks follow in dbt_config.
        with pytest.raises(SegqlConfigError, match=message):
            dbt_config(project_with(tmp_path / str(number), section))


def test_escaped_text_renders_back_to_itself() -> None:
    """What the models hold outside segql's own Jinja is shown by dbt as written."""
    environment = jinja2.Environment()
    for text in ["a {{ b }} c", "{% if %}", "{#", "{{{", "{ {", "}}", "x{"]:
        assert environment.from_string(_escape_jinja(text)).render() == text


def test_mapped_tables_use_ref_and_source(tmp_path: Path) -> None:
    """[dbt.tables] sends a table to an existing model or source; it is not redeclared."""
    project = project_with(
        tmp_path,
        '[dbt]\nsource = "raw"\n[dbt.tables]\nsubscriptions = { ref = "stg_subs" }\n'
        'events = { source = "tracking", table = "all_events" }\n',
    )
    config = dbt_config(project)
    assert config.location("subscriptions").jinja() == "{{ ref('stg_subs') }}"
    assert config.location("events").jinja() == "{{ source('tracking', 'all_events') }}"
    assert config.location("people").jinja() == "{{ source('raw', 'people') }}"
    assert config.dialect == "duckdb"


def test_example_is_documented() -> None:
    """Every [dbt] key is explained in examples/dbt/README.md."""
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    for key in ("dialect", "source", "schema", "database", "segment_models", "[dbt.tables]"):
        assert key in readme


def test_segment_names_never_write_outside_out(tmp_path: Path) -> None:
    """A segment name is a file name of its model: one that would leave ``--out`` (or hold a
    character a dbt ref cannot) is an error at the segment, and nothing is written."""
    hostile = ["x/../../../pwned", "a\\\\b", "..", "has space", "dot.ted"]
    for number, name in enumerate(hostile):
        folder = tmp_path / str(number)
        project = project_with(folder, "")
        rules = folder / "segql" / "segments" / "hostile.segql"
        rules.write_text(f"segment `{name}` where status = 'paid'\n", encoding="utf-8")
        project = segql.load_project(folder / "segql")
        out = folder / "deep" / "er" / "models"
        with pytest.raises(SegqlError, match="cannot be a dbt model") as raised:
            generate_dbt(project, out)
        assert "hostile.segql:1:" in raised.value.render()
        assert not list(folder.rglob("*pwned*")) and not out.exists()
