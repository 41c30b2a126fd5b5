"""The project as ``segql ui`` reads it: loaded afresh for every request (a file saved by
the builder, or by hand, shows at once), through one warehouse connection at a time.

Each request opens its own connection and closes it before answering, so a ``segql run``
in another terminal is never kept out of the warehouse for longer than one page takes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from segql.engines import EngineAdapter as Warehouse
from segql.engines import connect
from segql.project import Project, load_project
from segql.reading.reports import Reports
from segql.runs.overrides import Overrides
from segql.runs.store import META, Store


@dataclass(frozen=True)
class Reading:
    """What a page reads from: the project, an open read-only connection and, once segql
    has run in this warehouse, its recorded membership."""

    project: Project
    warehouse: Warehouse
    reports: Reports | None

    @property
    def has_run(self) -> bool:
        return self.reports is not None and self.reports.last_as_of() is not None


@dataclass
class Workspace:
    root: Path
    read_only: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def project(self) -> Project:
        return load_project(self.root)

    @contextmanager
    def reading(self) -> Iterator[Reading]:
        with self._lock:
            project = self.project()
            warehouse = connect(project.config, read_only=True)
            try:
                project.read_catalog(warehouse)
                schema = project.config.warehouse.schema
                has_tables = warehouse.table_columns(f"{schema}.{META}") is not None
                yield Reading(
                    project, warehouse, Reports(warehouse, schema) if has_tables else None
                )
            finally:
                warehouse.close()

    @contextmanager
    def overrides(self) -> Iterator[tuple[Project, Overrides]]:
        """A read-write connection with segql's tables in place, as ``segql exclude`` opens."""
        with self._lock:
            project = self.project()
            store = Store(project.config.warehouse.schema)
            warehouse = connect(project.config)
            try:
                store.ensure_tables(warehouse)
                yield project, Overrides(warehouse, store)
            finally:
                warehouse.close()
