"""segql.toml: where the warehouse is and which tables hold people, events and sources.

Read once into frozen dataclasses; every later stage takes these, never the raw TOML.
``${VAR}`` in the warehouse URL is replaced from the environment so secrets stay out of
the file, and a relative DuckDB path is taken relative to the folder of segql.toml.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from segql.config_schema import validate_file
from segql.errors import SegqlConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_FILE = "segql.toml"
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class WarehouseConfig:
    url: str = "duckdb:///warehouse.duckdb"
    schema: str = "segql"
    timezone: str = "UTC"
    # [warehouse.spark]: settings handed to the SparkSession builder as they are.
    spark: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EntityConfig:
    table: str = "people"
    id: str = "person_id"


@dataclass(frozen=True)
class SourceConfig:
    """A per-person table: the events table, or one of ``[sources.*]``.

    ``name`` is how rules refer to it (``events`` for the events table); ``event_name`` is
    set only for the events table, whose rows are picked by an event-name column.
    """

    name: str
    table: str
    person: str
    time: str | None = None
    properties: str | None = None
    event_name: str | None = None
    loaded_at: str | None = None  # when a row arrived (incremental runs read late rows by it)

    @property
    def is_events(self) -> bool:
        return self.event_name is not None


@dataclass(frozen=True)
class ProjectConfig:
    root: Path
    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    entity: EntityConfig = field(default_factory=EntityConfig)
    events: SourceConfig | None = None
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    segments_dir: str = "segments"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    salt: str = ""  # [project] salt: bucket()'s default salt (language.md 9.5)

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.warehouse.timezone)

    def source(self, name: str) -> SourceConfig | None:
        return self.sources.get(name)


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` that holds segql.toml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise SegqlConfigError(
        f"no {CONFIG_FILE} in {start} or any folder above it",
        help="run `segql init DIR` to make a project, or pass --project DIR",
    )


def load_config(root: Path) -> ProjectConfig:
    """Read ``root/segql.toml``."""
    path = root / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise SegqlConfigError(f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise SegqlConfigError(f"{path} is not valid TOML: {error}") from None
    return config_from_dict(raw, root.resolve(), text=text)


def config_from_dict(raw: dict[str, Any], root: Path, text: str | None = None) -> ProjectConfig:
    """Build a config from parsed TOML, checking every field it reads. The whole file is
    checked first (``segql.config_schema``): an unknown key or a wrong type is an error at
    its line of ``text``, the file's text, when given."""
    validate_file(raw, str(root / CONFIG_FILE), text)
    warehouse_raw = _table(raw, "warehouse")
    warehouse = WarehouseConfig(
        url=_str(warehouse_raw, "url", "warehouse", WarehouseConfig.url),
        schema=_str(warehouse_raw, "schema", "warehouse", WarehouseConfig.schema),
        timezone=_str(warehouse_raw, "timezone", "warehouse", WarehouseConfig.timezone),
        spark=_spark_settings(warehouse_raw),
    )
    try:
        ZoneInfo(warehouse.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SegqlConfigError(
            f"[warehouse] timezone '{warehouse.timezone}' is not a known time zone",
            help="use an IANA name such as 'UTC' or 'Europe/Paris'",
        ) from None
    entity_raw = _table(raw, "entity")
    entity = EntityConfig(
        table=_str(entity_raw, "table", "entity", EntityConfig.table),
        id=_str(entity_raw, "id", "entity", EntityConfig.id),
    )
    events = None
    if "events" in raw:
        events_raw = _table(raw, "events")
        events = SourceConfig(
            name="events",
            table=_str(events_raw, "table", "events", "events"),
            person=_str(events_raw, "person", "events", "person_id"),
            time=_str(events_raw, "time", "events", "occurred_at"),
            properties=_optional_str(events_raw, "properties", "events"),
            event_name=_str(events_raw, "name", "events", "event_type"),
            loaded_at=_optional_str(events_raw, "loaded_at", "events"),
        )
    sources: dict[str, SourceConfig] = {}
    for name, source_raw in _table(raw, "sources").items():
        if not isinstance(source_raw, dict):
            raise SegqlConfigError(f"[sources.{name}] must be a table")
        where = f"sources.{name}"
        sources[name] = SourceConfig(
            name=name,
            table=_str(source_raw, "table", where, name),
            person=_str(source_raw, "person", where, "person_id"),
            time=_optional_str(source_raw, "time", where),
            properties=_optional_str(source_raw, "properties", where),
            loaded_at=_optional_str(source_raw, "loaded_at", where),
        )
    if events is None and not sources:
        raise SegqlConfigError(
            f"{CONFIG_FILE} declares neither [events] nor any [sources.NAME]",
            help="declare where behaviour is: an [events] table or a [sources.NAME] table",
        )
    project_raw = _table(raw, "project")
    return ProjectConfig(
        root=root,
        warehouse=warehouse,
        entity=entity,
        events=events,
        sources=sources,
        segments_dir=_str(project_raw, "segments", "project", "segments"),
        raw=raw,
        salt=_salt(project_raw),
    )


def _salt(project_raw: dict[str, Any]) -> str:
    """``[project] salt``: any text, ``''`` by default."""
    value = project_raw.get("salt", "")
    if not isinstance(value, str):
        raise SegqlConfigError(f"salt in [project] of {CONFIG_FILE} must be a string")
    return value


def expand_env(text: str, what: str) -> str:
    """Replace ``${VAR}`` with the environment's value; a missing variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SegqlConfigError(f"{what} uses ${{{name}}}, which is not set in the environment")
        return os.environ[name]

    return _ENV_VAR.sub(replace, text)


def _spark_settings(warehouse_raw: dict[str, Any]) -> dict[str, str]:
    """``[warehouse.spark]`` as the builder's text settings (``true`` as "true", 4 as "4")."""
    settings = _table(warehouse_raw, "spark")
    return {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in settings.items()
    }


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise SegqlConfigError(f"[{key}] in {CONFIG_FILE} must be a table")
    return value


def _str(raw: dict[str, Any], key: str, where: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise SegqlConfigError(f"{key} in [{where}] must be a non-empty string")
    return value


def _optional_str(raw: dict[str, Any], key: str, where: str) -> str | None:
    if key not in raw:
        return None
    return _str(raw, key, where, "")
