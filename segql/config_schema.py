"""The one typed check of segql.toml: every section and key the code reads, and nothing else.

pydantic models with ``extra="forbid"`` and strict types describe the file; a problem is
reported as a ``SegqlConfigError`` at the key's line in segql.toml (TOML parsers keep no
positions, so the key is found in the text: ``locate``), with "did you mean" for an
unknown key. The ``[[actions]]`` entries are owned by segql.downstream.dispatch, which checks their
values; here only their top-level keys are checked, against ``ACTION_KEYS`` (extend it,
or call ``register_action_keys``, when an action gains a key).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from segql.errors import SegqlConfigError, Source, Span, did_you_mean

Text = Annotated[str, StringConstraints(min_length=1)]

# The top-level keys of an [[actions]] entry that segql.downstream.dispatch reads today.
ACTION_KEYS: set[str] = {
    "name", "segment", "on", "webhook", "file", "properties", "batch_size", "concurrency",
    "max_attempts", "backoff", "max_backoff", "start", "mode", "destination", "audience_id",
    "token", "base_url", "table", "timeout", "batch", "body", "rate", "delay", "enabled",
}  # fmt: skip


def register_action_keys(*keys: str) -> None:
    """Accept more top-level keys in ``[[actions]]`` (for a new kind of destination)."""
    ACTION_KEYS.update(keys)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class WarehouseSection(_Section):
    url: Text = "duckdb:///warehouse.duckdb"
    schema_: Text = Field("segql", alias="schema")
    timezone: Text = "UTC"
    # Spark only: settings handed to the SparkSession builder as they are.
    spark: dict[str, str | int | float | bool] | None = None


class EntitySection(_Section):
    table: Text = "people"
    id: Text = "person_id"


class EventsSection(_Section):
    table: Text = "events"
    person: Text = "person_id"
    time: Text = "occurred_at"
    name: Text = "event_type"
    properties: Text | None = None
    loaded_at: Text | None = None


class SourceSection(_Section):
    table: Text | None = None
    person: Text = "person_id"
    time: Text | None = None
    properties: Text | None = None
    loaded_at: Text | None = None


class ProjectSection(_Section):
    segments: Text = "segments"
    salt: str = ""  # bucket()'s default salt


class DbtSection(_Section):
    dialect: Text | None = None
    source: Text | None = None
    schema_: Text | None = Field(None, alias="schema")
    database: Text | None = None
    segment_models: bool = True
    segment_model_prefix: Text | None = None
    tables: dict[str, Any] = Field(default_factory=dict)


class SegqlToml(_Section):
    warehouse: WarehouseSection = Field(default_factory=WarehouseSection)
    entity: EntitySection = Field(default_factory=EntitySection)
    events: EventsSection | None = None
    sources: dict[str, SourceSection] = Field(default_factory=dict)
    project: ProjectSection = Field(default_factory=ProjectSection)
    dbt: DbtSection = Field(default_factory=DbtSection)
    actions: list[dict[str, Any]] = Field(default_factory=list)


_ALIASES = {"schema_": "schema"}


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [_ALIASES.get(name, name) for name in model.model_fields]


def validate_file(raw: dict[str, Any], path: str, text: str | None = None) -> SegqlToml:
    """Check parsed segql.toml; the first problem is raised at its line of ``text``."""
    try:
        parsed = SegqlToml.model_validate(raw)
    except ValidationError as error:
        raise _config_error(error.errors()[0], raw, path, text) from None
    for index, action in enumerate(parsed.actions):
        for key in action:
            if key not in ACTION_KEYS:
                detail = {"type": "extra_forbidden", "loc": ("actions", index, key)}
                raise _config_error(detail, raw, path, text)
    return parsed


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose key is the last part of ``loc`` (None for action entries)."""
    model: type[BaseModel] = SegqlToml
    parts = list(loc[:-1])
    while parts:
        part = parts.pop(0)
        if model is SegqlToml and part == "sources":
            if not parts:
                return None
            parts.pop(0)
            model = SourceSection
            continue
        if model is SegqlToml and part == "actions":
            return None
        field = model.model_fields.get(str(part)) or model.model_fields.get(f"{part}_")
        annotation = getattr(field, "annotation", None)
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        found = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not found:
            return None
        model = found[0]
    return model


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc[:-1]]
    if parts[:1] == ["actions"] and len(parts) > 1:
        return f"[[actions]] #{int(parts[1]) + 1}"
    return f"[{'.'.join(parts)}]" if parts else "segql.toml"


def _config_error(
    detail: Any, raw: dict[str, Any], path: str, text: str | None
) -> SegqlConfigError:
    loc = tuple(p for p in detail["loc"] if p not in ("function-after",))
    key = str(loc[-1])
    where = _where(loc)
    if detail["type"] == "extra_forbidden":
        if loc[:1] == ("actions",):
            known = sorted(ACTION_KEYS)
        else:
            model = _model_at(loc)
            known = _keys_of(model) if model is not None else []
        guess = did_you_mean(key, known)
        kind = "section" if len(loc) == 1 and isinstance(raw.get(key), dict) else "key"
        message = f"unknown {kind} '{key}' in {where}" + (
            f": did you mean '{guess}'?" if guess else ""
        )
        help = ("keys: " + ", ".join(known)) if known else None
    else:
        message = f"{'.'.join(str(p) for p in loc)} in segql.toml: {_type_message(detail)}"
        help = None
    span = locate(text, loc, path) if text is not None else None
    if span is None:
        message = f"{path}: {message}"
    return SegqlConfigError(message, span=span, help=help)


def _type_message(detail: Any) -> str:
    expected = {
        "string_type": "must be a string",
        "string_too_short": "must not be empty",
        "bool_type": "must be true or false",
        "model_type": "must be a table",
        "dict_type": "must be a table",
        "list_type": "must be an array of tables ([[...]])",
    }
    shown = detail.get("input")
    said = expected.get(detail["type"], str(detail.get("msg", "is not valid")).lower())
    return f"{said}, not {shown!r}" if shown is not None and not isinstance(shown, dict) else said


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")


def _key_pattern(key: str) -> re.Pattern[str]:
    quoted = re.escape(key)
    return re.compile(rf"^\s*(?:\"{quoted}\"|'{quoted}'|{quoted})\s*[=.]")


def _split_header(name: str) -> list[str]:
    return [part.strip().strip("\"'") for part in name.split(".")]


def locate(text: str, loc: tuple[Any, ...], path: str) -> Span | None:
    """The span of the key at ``loc`` in the text of segql.toml, or of its table header;
    None when it cannot be found (a key written in an inline table, say)."""
    names = [p for p in loc if not isinstance(p, int)]
    index = next((p for p in loc if isinstance(p, int)), None)
    source = Source(path, text)
    offset = 0
    section: list[str] = []
    counts: dict[str, int] = {}
    header_hit: int | None = None
    for line in text.splitlines(keepends=True):
        header = _HEADER.match(line)
        if header:
            section = _split_header(header.group(2))
            if header.group(1) == "[[":
                counts[".".join(section)] = counts.get(".".join(section), -1) + 1
            in_entry = index is None or counts.get(".".join(section), -1) == index
            if section == names and in_entry and header_hit is None:
                start = offset + line.index(section[-1])
                header_hit = start
        else:
            in_entry = index is None or counts.get(".".join(section), -1) == index
            for depth in range(len(names) - 1, -1, -1):
                # a key in its table, or a dotted key (entity.id = ...) in a parent table
                if section != names[:depth] or not in_entry:
                    continue
                dotted = names[depth:]
                pattern = _key_pattern(dotted[0])
                if pattern.match(line) and _dotted_matches(line, dotted):
                    start = offset + line.index(dotted[0])
                    return Span(source, start, start + len(dotted[0]))
        offset += len(line)
    if header_hit is not None:
        return Span(source, header_hit, header_hit + len(names[-1]))
    return None


def _dotted_matches(line: str, dotted: list[str]) -> bool:
    left = line.split("=", 1)[0]
    parts = _split_header(left)
    return parts[: len(dotted)] == dotted[: len(parts)]
