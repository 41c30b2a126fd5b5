"""What a destination receives for a change: the record, its properties, a request body.

``properties`` of an action name entity columns or traits. Columns are read from the
entity table; traits are computed by the compiler at the as-of of the run that made the
change (from the data as it is when dispatch reads it). ``body`` is a jinja2 template
rendered in a sandbox with ``changes`` (the records of one request) and ``change``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segql.compile.compiler import table_ref
from segql.errors import SegqlConfigError, SegqlError
from segql.output import FORMULA_STARTS
from segql.reading.reports import Change

if TYPE_CHECKING:
    from jinja2 import Template

Record = dict[str, Any]
# Cells a spreadsheet would run as a formula (OWASP's list): written with a leading quote.


def plain(value: Any) -> Any:
    """A value as JSON holds it."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def payload(change: Change, properties: Mapping[str, Any]) -> Record:
    """The JSON record of one change: what happened, to whom, and the chosen properties."""
    return {
        "event_id": change.event_id,
        "segment": change.segment,
        "person_id": change.person_id,
        "change": change.change,
        "as_of": plain(change.as_of) + "Z" if change.as_of is not None else None,
        "reason": change.reason,
        "commit_seq": change.commit_seq,
        "properties": {k: plain(v) for k, v in properties.items()},
    }


# --- request bodies -----------------------------------------------------------------------


def compile_body(template: str, fail: Callable[..., SegqlConfigError]) -> Template:
    """The action's ``body`` as a sandboxed jinja2 template; a syntax error names it."""
    from jinja2 import StrictUndefined, TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    try:
        return environment.from_string(template)
    except TemplateSyntaxError as error:
        raise fail(f"body: line {error.lineno}: {error.message}") from None


class BodyError(SegqlError):
    """A body template that failed for these changes: not sent, parked."""


def render_body(template: Template, records: Sequence[Record]) -> bytes:
    """The request body for these records from the template."""
    from jinja2 import TemplateError

    try:
        return template.render(changes=list(records), change=records[0]).encode()
    except TemplateError as error:
        raise BodyError(f"body template: {error}") from None


def json_body(records: Sequence[Record], batched: bool) -> bytes:
    """segql's own body: one record, or a JSON array of them when the action batches."""
    value: Any = list(records) if batched else records[0]
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# --- CSV ------------------------------------------------------------------------------------


def escape_formula(text: str) -> str:
    """A cell a spreadsheet would read as a formula, quoted so that it reads as text.

    The starts are ``segql.output``'s; unlike ``escape_csv_formula`` this also quotes text
    that only looks like a number (``'-5'``): a file action's numbers are written unquoted
    by ``csv_cell`` before it gets here."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Any, escape: bool) -> str:
    """A value as one CSV cell on one line; text a spreadsheet would run is escaped."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    text = str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return text if numeric or not escape else escape_formula(text)


# --- properties -----------------------------------------------------------------------------


class PropertyReader:
    """Reads the chosen properties of people: entity columns in one query, traits with
    the compiler's query at a given as-of."""

    def __init__(self, project: Any, warehouse: Any, names: Sequence[str]):
        self.project = project
        self.warehouse = warehouse
        self.names = tuple(names)
        traits = project.definitions.traits
        self.traits = tuple(n for n in self.names if n in traits)
        self.columns = tuple(n for n in self.names if n not in traits)

    def read(self, changes: Iterable[tuple[str, datetime | None]]) -> dict[tuple[str, Any], Record]:
        """Properties by ``(person_id, as_of)`` for every ``(person_id, as_of)`` given."""
        pairs = set(changes)
        if not self.names or not pairs:
            return {}
        people = {p for p, _ in pairs}
        columns = self._columns(people) if self.columns else {}
        found: dict[tuple[str, Any], Record] = {}
        by_time: dict[Any, set[str]] = {}
        for person, as_of in pairs:
            by_time.setdefault(as_of, set()).add(person)
        for as_of, who in by_time.items():
            traits = self._traits(who, as_of) if self.traits else {}
            for person in who:
                values = {**columns.get(person, {}), **traits.get(person, {})}
                found[(person, as_of)] = {n: values.get(n) for n in self.names}
        return found

    def _columns(self, people: set[str]) -> dict[str, Record]:
        entity = self.project.config.entity
        person = exp.cast(exp.column(entity.id, table="e", quoted=True), "VARCHAR")
        select = (
            exp.select(person, *(exp.column(p, table="e", quoted=True) for p in self.columns))
            .from_(table_ref(entity.table, "e"))
            .where(
                exp.In(
                    this=person.copy(), expressions=[exp.Literal.string(i) for i in sorted(people)]
                ),
                copy=False,
            )
        )
        found: dict[str, Record] = {}
        for row in self.warehouse.run(select):
            found.setdefault(str(row[0]), dict(zip(self.columns, row[1:], strict=True)))
        return found

    def _traits(self, people: set[str], as_of: datetime | None) -> dict[str, Record]:
        from segql.downstream.dispatch.traits import trait_values_query

        select = trait_values_query(
            self.project, self.warehouse.dialect.name, self.traits, as_of, sorted(people)
        )
        found: dict[str, Record] = {}
        for row in self.warehouse.run(select):
            found[str(row[0])] = dict(zip(self.traits, row[1:], strict=True))
        return found
