"""List segments (runtime.md 8.3): ``from list 'lists/x.csv'`` (ids in a file relative to
the project) and ``from table t`` (its ``person_id`` column), referenced like any other
segment, the same in SQL on every engine, in the reference evaluator and in a run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from segql.errors import SegqlErrors
from segql.language.parser import parse
from segql.language.printer import format_module
from segql.project import load_project
from tests.support.engines import Engine, Table
from tests.support.runtime import RuntimeProject
from tests.support.scenario import (
    account,
    make_project,
    make_tables,
    person,
    run_reference,
    run_sql,
)

AS_OF = datetime(2026, 1, 10)
RULES = """
segment vip from list 'lists/vip.csv'
segment with_account from table accounts
segment vip_paid where in vip and status = 'paid'
"""
TABLES = make_tables(
    people=[person(i, status="paid" if i % 2 else "free") for i in range(1, 7)],
    accounts=[account(2, "a"), account(3, "b"), account(None, "c"), account(99, "d")],
)
EXPECTED = {"vip": {1, 4, 5}, "with_account": {2, 3}, "vip_paid": {1, 5}}
LIST_FILE = "person_id\n1\n4\n\n5\n77\n4\n"  # a header, a blank row, an unknown id, a repeat


def test_list_segments_print_back_and_a_missing_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = parse(RULES, "rules.segql")
    text = format_module(module)
    assert "segment vip\n  from list 'lists/vip.csv'" in text and "from table accounts" in text
    assert format_module(parse(text, "again.segql")) == text
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SegqlErrors, match=r"cannot read the list file 'lists/vip\.csv'"):
        make_project(RULES).check()


def test_list_segments_agree_on_every_engine_and_the_reference(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "vip.csv").write_text(LIST_FILE)
    project = make_project(RULES)
    engine.load(TABLES)
    assert run_reference(project, TABLES, AS_OF) == EXPECTED
    assert run_sql(engine, project, AS_OF) == EXPECTED


@pytest.fixture(params=["duckdb", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeProject]:
    uri = request.getfixturevalue("postgres_server").uri if request.param == "postgres" else None
    project = RuntimeProject(tmp_path / "project", request.param, uri)
    prefix = load_project(project.root).config.entity.table.removesuffix("people")
    project.write_rules(RULES.replace("from table accounts", f"from table {prefix}accounts"))
    (project.root / "lists").mkdir()
    (project.root / "lists" / "vip.csv").write_text(LIST_FILE)
    project.load(TABLES)
    yield project
    project.close()


def test_a_run_reads_the_list_file_and_table(runtime: RuntimeProject) -> None:
    runtime.run(AS_OF)
    assert runtime.members() == {(s, str(p)) for s, people in EXPECTED.items() for p in people}
    (runtime.root / "lists" / "vip.csv").write_text("3\n")
    runtime.run(datetime(2026, 1, 11))
    assert {p for s, p in runtime.members() if s == "vip"} == {"3"}


def test_check_names_a_list_table_that_is_missing_or_has_no_person_id(
    runtime: RuntimeProject,
) -> None:
    """``segql check`` reads the catalog of a ``from table`` list too: a missing table or
    one without ``person_id`` is an error at the segment's line, before any run fails."""
    assert runtime.cli("check").returncode == 0
    prefix = load_project(runtime.root).config.entity.table.removesuffix("people")
    runtime.write_rules(RULES.replace("from table accounts", f"from table {prefix}acounts"))
    missing = runtime.cli("check")
    assert missing.returncode == 1
    assert f"table '{prefix}acounts' of this list segment does not exist" in missing.stderr
    assert "rules.segql:3:" in missing.stderr
    runtime.load({"tiers": Table((("tier", "text"),), (("gold",),))})
    runtime.write_rules(RULES.replace("from table accounts", f"from table {prefix}tiers"))
    no_column = runtime.cli("check")
    assert no_column.returncode == 1, no_column.stderr
    assert (
        f"table '{prefix}tiers' of this list segment has no 'person_id' column (its columns: tier)"
    ) in no_column.stderr
