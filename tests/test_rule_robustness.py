"""Rule text a careless editor or a generator writes: carriage returns, very deep chains.
Each is read correctly or is one clear error, never a traceback."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

import segql
from segql.errors import SegqlError
from tests.support.scenario import make_project
from tests.test_dbt import EXAMPLE


def example(tmp_path: Path, rules: bytes) -> Path:
    shutil.copytree(EXAMPLE / "segql", tmp_path / "segql")
    for old in (tmp_path / "segql" / "segments").glob("*.segql"):
        old.unlink()
    (tmp_path / "segql" / "segments" / "odd.segql").write_bytes(rules)
    return tmp_path / "segql"


def test_a_carriage_return_in_a_string_is_read_as_written(tmp_path: Path) -> None:
    """A raw CR inside a literal stays a CR (it was read as a newline, another value)."""
    project = segql.load_project(example(tmp_path, b"segment s where email = 'a\rb'\n"))
    where = project.definitions.segments["s"].where
    assert where.right.value == "a\rb"


def test_crlf_files_read_as_their_lines(tmp_path: Path) -> None:
    rules = b"segment a where email = 'x'\r\nsegment b where email = 'y'\r\n"
    project = segql.load_project(example(tmp_path, rules))
    assert project.segment_names == ["a", "b"]
    assert project.definitions.segments["b"].where.right.value == "y"


@pytest.mark.parametrize("depth", [500, 5000])
def test_a_very_deep_trait_chain_is_an_error_at_its_top(depth: int) -> None:
    rules = "trait t0 = ltv\n" + "".join(f"trait t{i} = t{i - 1} + 1\n" for i in range(1, depth))
    project = make_project(rules + f"segment s where t{depth - 1} > 3\n")
    with pytest.raises(SegqlError) as raised:
        project.check()
    text = raised.value.render()
    assert f"trait `t{depth - 1}` builds on a chain of {depth} traits" in text
    assert f"<rules>:{depth}:1:" in text


def test_a_chain_within_the_limit_compiles() -> None:
    rules = "trait t0 = ltv\n" + "".join(f"trait t{i} = t{i - 1} + 1\n" for i in range(1, 100))
    project = make_project(rules + "segment s where t99 > 3\n")
    project.check()
    assert "SELECT" in project.compile(dialect="duckdb", as_of=datetime(2026, 1, 1))


def test_a_very_long_sum_is_a_clean_error_on_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from segql.cli import main

    folder = example(tmp_path, b"segment s where ltv" + b" + 1" * 3000 + b" > 1\n")
    result = CliRunner().invoke(main, ["--project", str(folder), "compile"])
    assert result.exit_code == 1, result.output
    assert "nest too deeply" in result.output and "internal error" not in result.output


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        ("(?i)abc", "group extension"),
        ("(?=x)y", "group extension"),
        ("(a)\\1", "back-reference"),
        ("a*?b", "lazy or possessive"),
        ("a++", "lazy or possessive"),
        ("\\bword", "\\b"),
        ("a{,3}", "without a lower bound"),
    ],
)
def test_check_refuses_regexes_a_warehouse_rejects(pattern: str, what: str) -> None:
    """Python's re takes them, so check passed, and the run failed every segment."""
    project = make_project(f"segment s where email matches '{pattern}'\n")
    with pytest.raises(SegqlError, match="not every warehouse accepts") as raised:
        project.check()
    assert what in raised.value.render()


@pytest.mark.parametrize("pattern", ["^[a-z]+@[a-z]+\\.io$", "[(?]x", "a{2,3}", "[]a]", "\\d+"])
def test_portable_regexes_pass_check(pattern: str) -> None:
    make_project(f"segment s where email matches '{pattern}'\n").check()
