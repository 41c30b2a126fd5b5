"""Every ```segql block of the docs parses, checks and runs against the demo project.

Each block is added to the demo's own definitions (a block's name replaces the demo's
definition of that name), checked against the demo warehouse, compiled for DuckDB and
executed there, so the reference and the recipes cannot drift from what segql accepts.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from segql.engines import connect
from segql.language import ast
from segql.language.parser import parse
from segql.project import Project, load_project
from segql.runs.store import Store
from segql.starters.demo import init_project

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```segql\n(.*?)^```", re.DOTALL | re.MULTILINE)
AS_OF = datetime(2026, 11, 1)


def segql_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            blocks.append((f"{page.name}:{line}", match.group(1)))
    return blocks


BLOCKS = segql_blocks()


def test_the_reference_and_recipes_have_blocks() -> None:
    pages = {where.split(":")[0] for where, _ in BLOCKS}
    assert {"language.md", "recipes.md"} <= pages
    assert len(BLOCKS) >= 20


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Project:
    folder = tmp_path_factory.mktemp("docs_demo") / "demo"
    init_project(folder, people=300, seed=7, anchor=date(2026, 11, 1))
    project = load_project(folder)
    # segql's own tables, as after a first run: conditions on recorded membership read them
    warehouse = connect(project.config)
    try:
        Store(project.config.warehouse.schema).ensure_tables(warehouse)
    finally:
        warehouse.close()
    return project


def _with_block(demo: Project, module: ast.Module) -> Project:
    replaced = {definition.name for definition in module.definitions}
    kept = [
        ast.Module(tuple(d for d in m.definitions if d.name not in replaced)) for m in demo.modules
    ]
    return Project(demo.config, [*kept, module])


@pytest.mark.parametrize(("where", "text"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_doc_block_checks_compiles_and_runs(demo: Project, where: str, text: str) -> None:
    module = parse(text, where)
    assert module.definitions, f"{where}: a segql block with no definition"
    project = _with_block(demo, module)
    names = [d.name for d in module.definitions if isinstance(d, ast.Segment)]
    query = project.membership_query("duckdb", AS_OF, names or None)
    database = Path(demo.config.root) / "warehouse.duckdb"
    connection = duckdb.connect(str(database), read_only=True)
    try:
        rows = connection.execute(query.sql).fetchall()
    finally:
        connection.close()
    assert {segment for segment, _ in rows} <= set(names or project.segment_names)


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PATH_IN_BACKTICKS = re.compile(r"`(\.\./[^`]+)`")


@pytest.mark.parametrize("page", [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"], ids=str)
def test_docs_point_only_at_files_in_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(text) if "://" not in t] + PATH_IN_BACKTICKS.findall(text)
    missing = [t for t in targets if not (page.parent / t).exists()]
    assert not missing, f"{page.name} points at files that are not in the repository: {missing}"
