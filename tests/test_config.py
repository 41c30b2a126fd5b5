"""segql.toml is checked whole: an unknown key or a wrong type is an error at its line,
with the closest known key suggested, in every section the code reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from segql.config import load_config
from segql.config_schema import ACTION_KEYS, register_action_keys
from segql.errors import SegqlConfigError
from tests.support.runtime import RuntimeProject
from tests.support.scenario import make_tables, person

RULES = "segment paid where status = 'paid'\n"

GOOD = """\
[warehouse]
url = "duckdb:///w.duckdb"
schema = "segql"
timezone = "UTC"

[entity]
table = "people"
id = "person_id"

[events]
table = "events"
person = "person_id"
time = "occurred_at"
name = "event_type"
properties = "properties"

[sources.orders]
table = "orders"
time = "ordered_at"

[project]
segments = "segments"

[dbt]
segment_models = true

[[actions]]
segment = "paid"
on = "enter"
file = { path = "exports/paid.jsonl" }
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "segql.toml").write_text(text)
    return tmp_path


def error_of(tmp_path: Path, text: str) -> SegqlConfigError:
    with pytest.raises(SegqlConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value


def test_a_full_file_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.events is not None and config.events.properties == "properties"
    assert config.sources["orders"].time == "ordered_at"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('timezone = "UTC"', 'timzone = "UTC"',
         "unknown key 'timzone' in [warehouse]: did you mean 'timezone'?"),
        ("[entity]", "[entitiy]",
         "unknown section 'entitiy' in segql.toml: did you mean 'entity'?"),
        ('person = "person_id"', 'persn = "person_id"',
         "unknown key 'persn' in [events]: did you mean 'person'?"),
        ('time = "ordered_at"', 'tiem = "ordered_at"',
         "unknown key 'tiem' in [sources.orders]: did you mean 'time'?"),
        ('segments = "segments"', 'segmets = "segments"',
         "unknown key 'segmets' in [project]: did you mean 'segments'?"),
        ("segment_models = true", "segment_model = true",
         "unknown key 'segment_model' in [dbt]: did you mean 'segment_models'?"),
        ('on = "enter"', 'onn = "enter"',
         "unknown key 'onn' in [[actions]] #1: did you mean 'on'?"),
    ],
)  # fmt: skip
def test_unknown_keys_are_errors_at_their_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = GOOD.replace(old, new, 1)
    line = text.splitlines().index(new) + 1
    error = error_of(tmp_path, text)
    assert error.message == message
    assert error.span is not None and error.span.line == line
    rendered = error.render()
    assert rendered.startswith(f"{tmp_path / 'segql.toml'}:{line}:")
    assert "^" in rendered


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('schema = "segql"', "schema = 1",
         "warehouse.schema in segql.toml: must be a string, not 1"),
        ("segment_models = true", 'segment_models = "yes"',
         "dbt.segment_models in segql.toml: must be true or false, not 'yes'"),
        ('id = "person_id"', 'id = ""', "entity.id in segql.toml: must not be empty, not ''"),
    ],
)  # fmt: skip
def test_wrong_types_are_errors(tmp_path: Path, old: str, new: str, message: str) -> None:
    error = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert error.message == message
    assert error.span is not None and error.span.text in new


def test_dotted_keys_are_found(tmp_path: Path) -> None:
    error = error_of(tmp_path, 'entity.idd = "x"\n[events]\n')
    assert error.message == "unknown key 'idd' in [entity]: did you mean 'id'?"
    assert error.span is not None and (error.span.line, error.span.column) == (1, 1)


def test_action_keys_come_from_one_extendable_set(tmp_path: Path) -> None:
    text = GOOD + "retries = 3\n"
    assert "unknown key 'retries'" in error_of(tmp_path, text).message
    register_action_keys("retries")
    try:
        load_config(write(tmp_path, text))
    finally:
        ACTION_KEYS.discard("retries")


def test_check_and_run_refuse_a_mapped_column_that_is_not_there(tmp_path: Path) -> None:
    """A wrong [events] time, person or [entity] id is an error at its line before any
    SQL runs, naming what the table has; not an engine's Binder Error."""
    runtime = RuntimeProject(tmp_path / "p", "duckdb")
    runtime.write_rules(RULES)
    runtime.load(make_tables(people=[person(1, status="paid")]))
    toml = runtime.root / "segql.toml"
    good = toml.read_text()
    for key, wrong in (("time", "occured_at"), ("person", "persn_id"), ("id", "idd")):
        text = _replace_key(good, key, wrong)
        toml.write_text(text)
        for command in (("check",), ("run", "--as-of", "2026-01-01")):
            result = runtime.cli(*command)
            assert result.returncode == 1, result.stderr
            assert f"= '{wrong}': table" in result.stderr and "has no column" in result.stderr
            assert "Binder" not in result.stderr and "Traceback" not in result.stderr
            line = text.splitlines().index(f'{key} = "{wrong}"') + 1
            assert f"segql.toml:{line}:" in result.stderr
    toml.write_text(good)
    assert runtime.cli("check").returncode == 0
    runtime.close()


def _replace_key(text: str, key: str, value: str) -> str:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.split("=")[0].strip() == key)
    lines[index] = f'{key} = "{value}"'
    return "\n".join(lines) + "\n"


def test_a_mapped_column_of_an_unusable_kind_is_an_error(tmp_path: Path) -> None:
    from segql.checks.mapping_check import mapping_errors
    from segql.language.catalog import Catalog

    config = load_config(write(tmp_path, GOOD))
    catalog = Catalog.from_columns(
        {
            "people": [("person_id", "BIGINT")],
            "events": [("person_id", "BIGINT"), ("event_type", "VARCHAR"),
                       ("occurred_at", "BIGINT"), ("properties", "JSON")],
            "orders": [("person_id", "BOOLEAN"), ("ordered_at", "TIMESTAMP")],
        }
    )  # fmt: skip
    messages = [error.message for error in mapping_errors(config, catalog)]
    assert messages == [
        "[events] time = 'occurred_at': column 'occurred_at' of table 'events' holds number "
        "values; it must hold a date, a timestamp or timestamp text",
        "[sources.orders] person = 'person_id': column 'person_id' of table 'orders' holds "
        "boolean values; it must hold a number or text id",
    ]
