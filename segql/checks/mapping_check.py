"""Check the mappings of segql.toml against the warehouse: every column that [entity],
[events] and [sources.*] name exists in its table, with a kind of value segql can use.

Run by ``segql check`` and before ``segql run`` sends any SQL, so a misspelt column is
an error at its line of segql.toml (with what the table has, and the closest name), never
an engine's "Binder Error" in the middle of a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from segql.config import CONFIG_FILE, ProjectConfig
from segql.config_schema import locate
from segql.errors import SegqlConfigError, did_you_mean
from segql.language.catalog import Catalog, ValueType

IDS: frozenset[ValueType] = frozenset({"number", "string", "any"})
# Text that reads as a timestamp works too (the engines cast it in the comparison).
TIMES: frozenset[ValueType] = frozenset({"time", "string", "any"})
TEXTS: frozenset[ValueType] = frozenset({"string", "any"})
PROPERTIES: frozenset[ValueType] = frozenset({"json", "string", "any"})
# loaded_at: compared with the highest value an incremental run read (segql.runs.incremental).
LOADED: frozenset[ValueType] = frozenset({"time", "number", "string", "any"})
_KINDS = {IDS: "a number or text id", TIMES: "a date, a timestamp or timestamp text", TEXTS: "text",
          PROPERTIES: "JSON or JSON text", LOADED: "a timestamp, a number or text"}  # fmt: skip


@dataclass(frozen=True)
class Mapping:
    """One column that segql.toml names: where (section, key), which table and column,
    and the kinds of value that work there."""

    section: tuple[str, ...]
    key: str
    table: str
    column: str
    usable: frozenset[ValueType]


def mappings(config: ProjectConfig) -> list[Mapping]:
    """Every column segql.toml maps, in file order of sections."""
    found = [Mapping(("entity",), "id", config.entity.table, config.entity.id, IDS)]
    events = config.events
    if events is not None:
        section: tuple[str, ...] = ("events",)
        found.append(Mapping(section, "person", events.table, events.person, IDS))
        if events.event_name is not None:
            found.append(Mapping(section, "name", events.table, events.event_name, TEXTS))
        if events.time is not None:
            found.append(Mapping(section, "time", events.table, events.time, TIMES))
        if events.properties is not None:
            found.append(Mapping(section, "properties", events.table, events.properties,
                                 PROPERTIES))  # fmt: skip
        if events.loaded_at is not None:
            found.append(Mapping(section, "loaded_at", events.table, events.loaded_at, LOADED))
    for name, source in config.sources.items():
        section = ("sources", name)
        found.append(Mapping(section, "person", source.table, source.person, IDS))
        if source.time is not None:
            found.append(Mapping(section, "time", source.table, source.time, TIMES))
        if source.properties is not None:
            found.append(Mapping(section, "properties", source.table, source.properties,
                                 PROPERTIES))  # fmt: skip
        if source.loaded_at is not None:
            found.append(Mapping(section, "loaded_at", source.table, source.loaded_at, LOADED))
    return found


def mapping_errors(config: ProjectConfig, catalog: Catalog) -> list[SegqlConfigError]:
    """An error for each mapped column that is missing or of a kind segql cannot use;
    none when the catalog is unknown or the table is missing (reported on its own)."""
    path = config.root / CONFIG_FILE
    try:
        text: str | None = path.read_text(encoding="utf-8")
    except OSError:
        text = None
    errors = []
    for mapping in mappings(config):
        columns = catalog.columns(mapping.table)
        if not columns:
            continue
        where = f"[{'.'.join(mapping.section)}] {mapping.key}"
        kind = columns.get(mapping.column)
        if kind is None:
            guess = did_you_mean(mapping.column, columns)
            message = (
                f"{where} = '{mapping.column}': table '{mapping.table}' has no column "
                f"'{mapping.column}'" + (f": did you mean '{guess}'?" if guess else "")
            )
            help = f"columns of {mapping.table}: " + ", ".join(columns)
        elif kind not in mapping.usable:
            message = (
                f"{where} = '{mapping.column}': column '{mapping.column}' of table "
                f"'{mapping.table}' holds {kind} values; it must hold {_KINDS[mapping.usable]}"
            )
            usable = [c for c, k in columns.items() if k in mapping.usable]
            help = f"{_KINDS[mapping.usable]} columns of {mapping.table}: " + (
                ", ".join(usable) or "none"
            )
        else:
            continue
        span = None
        if text is not None:  # the key's line; its section's header when it is a default
            span = locate(text, (*mapping.section, mapping.key), str(path)) or locate(
                text, mapping.section, str(path)
            )
        errors.append(
            SegqlConfigError(message if span else f"{path}: {message}", span=span, help=help)
        )
    return errors
