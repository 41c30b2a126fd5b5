"""``segql check`` of JSON properties kept in text columns: a sample of rows read with the
same test the runs use, so values that are no JSON object are reported before a run."""

from __future__ import annotations

from sqlglot import exp

from segql.compile.compiler import table_ref
from segql.config import SourceConfig
from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlError, SegqlWarehouseError
from segql.project import Project

SAMPLE_ROWS = 10_000


def text_properties(project: Project) -> list[SourceConfig]:
    """Sources whose properties column the warehouse types as text, not JSON."""
    config = project.config
    sources = [config.events, *config.sources.values()]
    return [
        source
        for source in sources
        if source is not None
        and source.properties is not None
        and project.catalog.column_type(source.table, source.properties) == "string"
    ]


def properties_warnings(project: Project, warehouse: Warehouse) -> list[str]:
    """One warning per text properties column where sampled rows are no JSON object (they
    are read as having no properties); an error where the warehouse cannot test them."""
    warnings = []
    for source in text_properties(project):
        assert source.properties is not None
        column = exp.column(source.properties, quoted=True)
        valid = warehouse.dialect.valid_json(column)
        if valid is None:
            continue
        sample = (
            exp.select(exp.alias_(column.copy(), "p", quoted=True))
            .from_(table_ref(source.table))
            .where(column.copy().is_(exp.null()).not_())
            .limit(SAMPLE_ROWS)
        )
        test = warehouse.dialect.valid_json(exp.column("p", quoted=True))
        assert test is not None
        bad = exp.Sum(
            this=exp.Case(
                ifs=[exp.If(this=exp.Not(this=exp.Paren(this=test)), true=exp.Literal.number(1))],
                default=exp.Literal.number(0),
            )
        )
        query = exp.select(exp.Count(this=exp.Star()), bad).from_(
            exp.alias_(exp.Subquery(this=sample), "s")
        )
        try:
            total, malformed = warehouse.run(query)[0]
        except SegqlWarehouseError as error:
            raise SegqlError(
                f"the text column {source.table}.{source.properties} cannot be read as JSON "
                f"here: {error.message}",
                help="store properties as JSON/JSONB (PostgreSQL 16 or later reads JSON text)",
            ) from None
        if malformed:
            warnings.append(
                f"{malformed} of {total} sampled rows of {source.table}.{source.properties} "
                "are not a JSON object: their properties are read as unset"
            )
    return warnings
