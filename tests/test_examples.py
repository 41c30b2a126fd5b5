"""The examples work as their READMEs say: the retail RFM on the real UCI file (where the
file is beside the checkout, as in CI) and the SaaS demo project."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from segql.engines import connect
from segql.project import load_project
from segql.reference import evaluate
from segql.runs.runner import Runner
from tests.support.engines import in_ci

ROOT = Path(__file__).resolve().parents[1]
RETAIL_CSV = ROOT.parent / "shared" / "data" / "online_retail_uci_2010_2011.csv"
AS_OF = datetime(2011, 12, 10)


@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not RETAIL_CSV.exists():
        if in_ci():
            pytest.fail(f"{RETAIL_CSV} is missing in CI")
        pytest.skip(f"{RETAIL_CSV} is not beside this checkout")
    folder = tmp_path_factory.mktemp("retail") / "retail"
    shutil.copytree(ROOT / "examples" / "retail", folder)
    from examples.retail.load import load

    counts = load(RETAIL_CSV, folder / "warehouse.duckdb")
    assert counts["customers"] == 4372  # as the file's provenance says
    return folder


def test_retail_rfm_matches_the_reference_evaluator(retail: Path) -> None:
    project = load_project(retail)
    warehouse = connect(project.config)
    try:
        result = Runner(project, warehouse).run(None, AS_OF)
    finally:
        warehouse.close()
    sizes = {s.segment: s.members for s in result.segments}
    assert sizes["champions"] > 100 and sizes["lost"] > 100
    connection = duckdb.connect(str(retail / "warehouse.duckdb"), read_only=True)
    tables = {}
    for table in ("customers", "invoices"):
        cursor = connection.execute(f"SELECT * FROM {table}")
        tables[table] = ([d[0] for d in cursor.description], cursor.fetchall())
    members = connection.execute("SELECT segment, person_id FROM segql.segql_members").fetchall()
    connection.close()
    definitions = [*project.definitions.segments.values(), *project.definitions.traits.values()]
    expected = evaluate(definitions, project.config, tables, AS_OF)
    found: dict[str, set[str]] = {name: set() for name in expected}
    for segment, person in members:
        found[segment].add(person)
    assert found == {name: {str(p) for p in people} for name, people in expected.items()}


def test_saas_example_is_what_init_writes(tmp_path: Path) -> None:
    from segql.starters.demo import CONFIG, SEGMENTS

    example = ROOT / "examples" / "saas"
    assert (example / "segql.toml").read_text() == CONFIG
    for name, text in SEGMENTS.items():
        assert (example / "segments" / name).read_text() == text
    folder = tmp_path / "saas"
    shutil.copytree(example, folder)
    from segql.starters.demo import generate_demo_warehouse

    generate_demo_warehouse(folder / "warehouse.duckdb", people=500)
    project = load_project(folder)
    warehouse = connect(project.config)
    try:
        result = Runner(project, warehouse).run()
    finally:
        warehouse.close()
    assert {s.segment for s in result.segments} == set(project.segment_names)
