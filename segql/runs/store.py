"""segql's own tables in the warehouse (runtime.md section 3), created and upgraded here.

The layout has a version, recorded in ``segql_meta``. ``ensure_tables`` creates what is
missing and upgrades an older layout by adding to it; it never drops a table or a column,
so segql never loses what it recorded. Statements are sqlglot expressions.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlWarehouseError

SCHEMA_VERSION = 1

RUNS = "segql_runs"
VERSIONS = "segql_segment_versions"
MEMBERS = "segql_members"
HISTORY = "segql_history"
INTERVALS = "segql_intervals"
CURSORS = "segql_cursors"
DELIVERIES = "segql_deliveries"
META = "segql_meta"
OVERRIDES = "segql_overrides"
TOMBSTONES = "segql_tombstones"
STATE_DAYS = "segql_state_days"
EVERY_SEGMENT = "*"  # an override's segment that stands for every segment

# Person ids are kept as text: one type for every entity id, compared the same everywhere.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    META: (("key", "VARCHAR"), ("value", "VARCHAR")),
    RUNS: (
        ("run_id", "VARCHAR"),
        ("as_of", "TIMESTAMP"),
        ("started_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("commit_seq", "BIGINT"),
        ("error", "VARCHAR"),
        ("segments", "VARCHAR"),
        ("summary", "VARCHAR"),
        ("mode", "VARCHAR"),  # full / incremental (segql.runs.incremental)
        ("full_reason", "VARCHAR"),  # why a run recomputed everybody
    ),
    VERSIONS: (
        ("segment", "VARCHAR"),
        ("version", "INTEGER"),
        ("definition_hash", "VARCHAR"),
        ("source_text", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
        ("retired_at", "TIMESTAMP"),
    ),
    MEMBERS: (
        ("segment", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("entered_at", "TIMESTAMP"),
        ("entered_run_id", "VARCHAR"),
    ),
    HISTORY: (
        ("event_id", "VARCHAR"),
        ("segment", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("change", "VARCHAR"),
        ("as_of", "TIMESTAMP"),
        ("run_id", "VARCHAR"),
        ("commit_seq", "BIGINT"),
        ("version", "INTEGER"),
        ("reason", "VARCHAR"),
    ),
    # event_id: the last change handed over within commit_seq ('' or NULL: all of it).
    CURSORS: (
        ("consumer", "VARCHAR"),
        ("commit_seq", "BIGINT"),
        ("updated_at", "TIMESTAMP"),
        ("event_id", "VARCHAR"),
    ),
    DELIVERIES: (
        ("destination", "VARCHAR"),
        ("event_id", "VARCHAR"),
        ("status", "VARCHAR"),
        ("attempts", "INTEGER"),
        ("last_error", "VARCHAR"),
        ("delivered_at", "TIMESTAMP"),
    ),
    OVERRIDES: (
        ("segment", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
    ),
    TOMBSTONES: (
        ("person_hash", "VARCHAR"),
        ("forgotten_at", "TIMESTAMP"),
        ("rows_removed", "BIGINT"),
    ),
    # Rows per day of each source without loaded_at, as the state read them.
    STATE_DAYS: (("source", "VARCHAR"), ("day", "DATE"), ("rows", "BIGINT")),
}
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    META: ("key",),
    RUNS: ("run_id",),
    VERSIONS: ("segment", "version"),
    MEMBERS: ("segment", "person_id"),
    HISTORY: ("event_id",),
    CURSORS: ("consumer",),
    DELIVERIES: ("destination", "event_id"),
    OVERRIDES: ("segment", "person_id"),
    TOMBSTONES: ("person_hash", "forgotten_at"),
    STATE_DAYS: ("source", "day"),
}


def _with_properties(create: exp.Create, properties: list[exp.Expr]) -> exp.Create:
    """``CREATE TABLE`` with the engine's table properties (Spark: ``USING ICEBERG``)."""
    if properties:
        create.set("properties", exp.Properties(expressions=properties))
    return create


@dataclass(frozen=True)
class Store:
    """Names segql's tables in one schema of one warehouse."""

    schema: str

    def table(self, name: str, alias: str | None = None) -> exp.Table:
        table = exp.Table(
            this=exp.to_identifier(name, quoted=True),
            db=exp.to_identifier(self.schema, quoted=True),
        )
        if alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
        return table

    def ensure_tables(self, warehouse: Warehouse) -> None:
        """Create segql's schema and tables if missing; refuse a newer layout than ours."""
        warehouse.create_schema(self.schema)
        swap = warehouse.COMMIT_PROTOCOL == "swap"
        if swap:  # segql_runs, _history, _members, _segment_versions: views of committed runs
            from segql.runs.swap_commit import VIEWED, ensure_swap_tables

        for name, columns in TABLES.items():
            if not (swap and name in VIEWED):
                table = self.create_table(name, columns, warehouse.DECLARE_KEYS)
                warehouse.run(_with_properties(table, warehouse.table_properties()))
        if swap:
            ensure_swap_tables(self, warehouse)
        else:
            self.add_missing_columns(warehouse)
            warehouse.run(self.intervals_view())
        version = self.layout_version(warehouse)
        if version is None:
            insert = exp.insert(
                exp.Values(
                    expressions=[
                        exp.Tuple(
                            expressions=[
                                exp.Literal.string("schema_version"),
                                exp.Literal.string(str(SCHEMA_VERSION)),
                            ]
                        )
                    ]
                ),
                self.table(META),
            )
            warehouse.run(insert)
        elif version > SCHEMA_VERSION:
            raise SegqlWarehouseError(
                f"segql's tables in schema '{self.schema}' have layout {version}, newer than "
                f"this segql understands ({SCHEMA_VERSION})",
                help="upgrade segql",
            )

    def add_missing_columns(
        self, warehouse: Warehouse, tables: tuple[str, ...] = tuple(TABLES)
    ) -> None:
        """Add the columns a table made by an older segql lacks (nullable, at the end)."""
        for name in tables:
            columns = TABLES[name]
            existing = warehouse.table_columns(f"{self.schema}.{name}")
            if existing is None:
                continue
            have = {column.lower() for column, _ in existing}
            for column, kind in columns:
                if column.lower() in have:
                    continue
                alter = exp.Alter(
                    this=self.table(name),
                    kind="TABLE",
                    actions=[
                        exp.ColumnDef(
                            this=exp.to_identifier(column, quoted=True),
                            kind=exp.DataType.build(kind),
                        )
                    ],
                )
                warehouse.run(alter)

    def layout_version(self, warehouse: Warehouse) -> int | None:
        select = (
            exp.select("value")
            .from_(self.table(META))
            .where(exp.column("key").eq(exp.Literal.string("schema_version")))
        )
        rows = warehouse.run(select)
        return int(rows[0][0]) if rows else None

    def create_table(
        self, name: str, columns: tuple[tuple[str, str], ...], primary_key: bool = True
    ) -> exp.Create:
        definitions: list[exp.Expr] = [
            exp.ColumnDef(
                this=exp.to_identifier(column, quoted=True), kind=exp.DataType.build(kind)
            )
            for column, kind in columns
        ]
        if primary_key:
            definitions.append(
                exp.PrimaryKey(
                    expressions=[exp.to_identifier(c, quoted=True) for c in PRIMARY_KEYS[name]]
                )
            )
        return exp.Create(
            this=exp.Schema(this=self.table(name), expressions=definitions),
            kind="TABLE",
            exists=True,
        )

    def intervals_view(self) -> exp.Create:
        """Stretches of membership: each enter paired with the exit that follows it."""
        history = exp.column
        next_change = exp.Window(
            this=exp.Lead(this=history("as_of", quoted=True)),
            partition_by=[history("segment", quoted=True), history("person_id", quoted=True)],
            order=exp.Order(expressions=[exp.Ordered(this=history("commit_seq", quoted=True))]),
        )
        changes = exp.select(
            history("segment", quoted=True),
            history("person_id", quoted=True),
            history("change", quoted=True),
            exp.alias_(history("as_of", quoted=True), "valid_from", quoted=True),
            exp.alias_(next_change, "valid_to", quoted=True),
        ).from_(self.table(HISTORY))
        select = (
            exp.select(
                history("segment", quoted=True),
                history("person_id", quoted=True),
                history("valid_from", quoted=True),
                history("valid_to", quoted=True),
            )
            .from_(changes.subquery("changes"))
            .where(history("change", quoted=True).eq(exp.Literal.string("enter")))
        )
        return exp.Create(this=self.table(INTERVALS), kind="VIEW", expression=select, replace=True)
