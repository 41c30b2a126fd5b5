"""A segql project: segql.toml plus every ``.segql`` file, loaded and checked together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segql.checks.mapping_check import mapping_errors
from segql.compile.compiler import (
    MembershipQuery,
    QueryOptions,
    collector_paused,
    compile_membership_query,
)
from segql.compile.dialect import get_dialect
from segql.compile.plan import Plan
from segql.compile.planner import plan_membership
from segql.config import ProjectConfig, find_project_root, load_config
from segql.engines import EngineAdapter as Warehouse
from segql.engines import connect, tables_of
from segql.errors import SegqlError, SegqlErrors, SegqlNameError, unknown_name_message
from segql.language import ast
from segql.language.catalog import Catalog
from segql.language.checker import Analyzer, Definitions, check_definitions, walk
from segql.language.parser import parse

if TYPE_CHECKING:
    from segql.runs.runner import RunResult


@dataclass
class Project:
    """Config, definitions and (once read) the warehouse catalog of one project."""

    config: ProjectConfig
    modules: list[ast.Module]
    catalog_override: Catalog | None = field(default=None, repr=False)
    _checked_against: Catalog | None = field(default=None, init=False, repr=False)

    @cached_property
    def definitions(self) -> Definitions:
        return Definitions.from_modules(self.modules)

    @property
    def segment_names(self) -> list[str]:
        return list(self.definitions.segments)

    @property
    def paused_segments(self) -> list[str]:
        """Segments marked ``paused``: not evaluated, their members kept as they are."""
        return [name for name, segment in self.definitions.segments.items() if segment.paused]

    @cached_property
    def catalog(self) -> Catalog:
        """The warehouse's columns; unknown when the warehouse cannot be read.

        Without its unique keys: SQL compiled from this catalog (``segql compile``, the dbt
        models) may run on another warehouse, where the keys need not hold. A run reads
        the catalog through its own connection (``read_catalog``) and uses them."""
        if self.catalog_override is not None:
            return self.catalog_override
        try:
            warehouse = connect(self.config, read_only=True)
        except SegqlError:
            return Catalog.unknown()
        try:
            return warehouse.catalog(tables_of(self.config)).without_keys()
        finally:
            warehouse.close()

    def read_catalog(self, warehouse: Warehouse) -> Catalog:
        """Read the catalog through an open connection and keep it."""
        listed = [
            node.name
            for segment in self.definitions.segments.values()
            for node in walk(segment)
            if isinstance(node, ast.IdList) and node.kind == "table"
        ]
        self.catalog = warehouse.catalog(list(dict.fromkeys([*tables_of(self.config), *listed])))
        self.__dict__.pop("analyzer", None)  # names now resolve against this catalog
        return self.catalog

    @cached_property
    def analyzer(self) -> Analyzer:
        return Analyzer(self.config, self.catalog, self.definitions)

    def check(self) -> None:
        """Raise every error in the project (tables, names, types, cycles) at once.

        Checked once: the definitions and the catalog do not change afterwards."""
        if self._checked_against is self.catalog:
            return
        errors: list[SegqlError] = []
        if self.catalog.is_known:
            for table in tables_of(self.config):
                if not self.catalog.has_table(table):
                    errors.append(
                        SegqlNameError(
                            f"table '{table}' named in segql.toml does not exist in the warehouse"
                        )
                    )
            errors += mapping_errors(self.config, self.catalog)
        if errors:
            raise SegqlErrors(errors)
        check_definitions(self.analyzer)
        self._checked_against = self.catalog

    def event_names(self) -> set[str]:
        """Every event name the rules mention (not source names)."""
        names: set[str] = set()
        for definition in [*self.definitions.segments.values(), *self.definitions.traits.values()]:
            for node in walk(definition):
                if not isinstance(node, ast.EventSpec) or node.ref is None:
                    continue
                if node.ref not in self.config.sources:
                    names.add(node.ref)
        return names

    def select(self, segments: Sequence[str] | None) -> list[str]:
        """Segment names to work on, checked (all of them when none are given)."""
        if not segments:
            if not self.segment_names:
                raise self.no_segments_error()
            return self.segment_names
        known = self.definitions.segments
        for name in segments:
            if name not in known:
                raise SegqlNameError(unknown_name_message("segment", name, known))
        return list(dict.fromkeys(segments))

    def no_segments_error(self) -> SegqlError:
        folder = f"{self.config.segments_dir}/"
        if self.modules:
            where = f"the .segql files in {folder} define no segment"
        else:
            where = f"no .segql files in {folder}"
        return SegqlError(
            f"nothing to run: {where}",
            help=f"add a file such as {folder}first.segql holding "
            "`segment paid where status = 'paid'`, or see `segql templates list`",
        )

    def membership_query(
        self,
        dialect: str = "duckdb",
        as_of: datetime | None = None,
        segments: Sequence[str] | None = None,
        members_table: exp.Table | None = None,
        options: QueryOptions | None = None,
    ) -> MembershipQuery:
        """The checked, compiled query for the selected segments."""
        with collector_paused():
            self.check()
            return compile_membership_query(
                self.analyzer,
                self.select(segments),
                get_dialect(dialect),
                as_of,
                members_table,
                options,
            )

    def plan(self, dialect: str = "duckdb", segments: Sequence[str] | None = None) -> Plan:
        """The plan of the query for the selected segments: what is read and computed."""
        self.check()
        return plan_membership(self.analyzer, self.select(segments), get_dialect(dialect))

    def compile(
        self,
        dialect: str = "duckdb",
        as_of: datetime | None = None,
        segments: Sequence[str] | None = None,
    ) -> str:
        """SQL returning ``(segment, person_id)`` for every member; ``as_of`` None makes
        the time a bind parameter named ``as_of``."""
        return self.membership_query(dialect, as_of, segments).sql

    # --- the Python API of what the command line does (docs/api.md) ---------------------

    def run(
        self,
        segments: Sequence[str] | None = None,
        as_of: datetime | None = None,
        prune: bool = False,
        wait: float = 0.0,
        full: bool = False,
    ) -> RunResult:
        """``segql run``: evaluate, diff, record; the same errors as the command.
        ``full``: recompute everybody, as ``segql run --full`` (else incremental where
        segql can prove it gives the same answer)."""
        from segql.runs.runner import Runner

        warehouse = connect(self.config, wait=wait)
        try:
            return Runner(self, warehouse, full=full).run(segments, as_of, prune=prune, wait=wait)
        finally:
            warehouse.close()

    def members(self, segment: str, limit: int | None = None) -> list[tuple[Any, ...]]:
        """``segql members``: (person_id, entered_at, run_id) of a segment's members."""
        from segql.reading.reports import Reports

        self.select([segment])
        warehouse = connect(self.config, read_only=True)
        try:
            return Reports(warehouse, self.config.warehouse.schema).members(segment, limit).rows
        finally:
            warehouse.close()

    def preview(
        self, condition: str, as_of: datetime | None = None, sample: int = 10
    ) -> tuple[int, list[Any]]:
        """``segql preview``: how many people a condition selects, and the first ids."""
        from segql.reading.preview import preview_condition

        warehouse = connect(self.config, read_only=True)
        try:
            return preview_condition(self, warehouse, condition, as_of, sample)
        finally:
            warehouse.close()

    def person(self, person_id: str) -> dict[str, list[dict[str, Any]]]:
        """``segql person``: the person's segments (entered_at, version), history and
        trait values (``traits``: one row with ``trait`` and ``value`` each)."""
        from segql.reading.person import person_history, person_segments, person_traits
        from segql.reading.reports import Reports

        warehouse = connect(self.config, read_only=True)
        try:
            store = Reports(warehouse, self.config.warehouse.schema).store
            found = {
                "segments": person_segments(warehouse, store, str(person_id)),
                "history": person_history(warehouse, store, str(person_id)),
                "traits": person_traits(self, warehouse, str(person_id)),
            }
        finally:
            warehouse.close()
        return {
            key: [dict(zip(rows.columns, row, strict=True)) for row in rows.rows]
            for key, rows in found.items()
        }

    def evaluate(
        self,
        person_ids: Sequence[str],
        as_of: datetime | None = None,
        segments: Sequence[str] | None = None,
    ) -> dict[str, list[str]]:
        """``segql eval --person``: each person's segments at ``as_of`` (now), computed
        with the person filter in every read; nothing is written."""
        from segql.reading.evaluate import evaluate_people

        warehouse = connect(self.config, read_only=True)
        try:
            return evaluate_people(self, warehouse, person_ids, as_of, segments)
        finally:
            warehouse.close()


def load_project(path: str | Path = ".") -> Project:
    """Load the project whose segql.toml is at or above ``path``."""
    root = find_project_root(Path(path))
    config = load_config(root)
    folder = root / config.segments_dir
    files = sorted(folder.rglob("*.segql")) if folder.is_dir() else []
    # Read as stored (newline=""): universal newlines would turn a carriage return inside a
    # string literal into a newline; outside strings the lexer takes CR as white space.
    modules = [parse(_read_rules(f), _display_path(f, root)) for f in files]
    return Project(config, modules)


def project_from_text(
    config: ProjectConfig, text: str, catalog: Catalog | None = None, path: str = "<rules>"
) -> Project:
    """A project from a config and rule text, without files (tests, notebooks)."""
    return Project(config, [parse(text, path)], catalog)


def _display_path(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _read_rules(path: Path) -> str:
    """A rules file's text exactly as stored."""
    with path.open(encoding="utf-8", newline="") as handle:
        return handle.read()
