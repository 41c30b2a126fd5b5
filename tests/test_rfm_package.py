"""The R package rfm's published segmentation of its own sample orders, reproduced with
``quantile`` and ``case when`` (examples/rfm_package): the scores and segments its article
shows for the first customers, and every customer as its algorithm gives them."""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from segql.compile.compiler import QueryOptions, compile_values_query
from segql.compile.dialect import get_dialect
from segql.language import ast
from segql.project import Project, load_project
from segql.reference import evaluate
from tests.support.engines import in_ci

ROOT = Path(__file__).resolve().parents[1]
# Beside the checkout (as in CI), or beside the folder of worktrees that holds it.
ORDERS_CSV = next(
    (
        folder / "shared" / "data" / "rfm_pkg_rfm_data_orders_2018.csv"
        for folder in (ROOT.parent, ROOT.parent.parent)
        if (folder / "shared" / "data" / "rfm_pkg_rfm_data_orders_2018.csv").exists()
    ),
    ROOT.parent / "shared" / "data" / "rfm_pkg_rfm_data_orders_2018.csv",
)
ANALYSIS_DATE = datetime(2006, 12, 31)

# The package's article on transaction data (docs/articles/rfm-transaction-level-data.html
# of rsquaredacademy/rfm at commit 04176d0): recency days, orders, amount and the three
# scores of the first customers it lists.
PUBLISHED_SCORES = {
    "Abbey O'Reilly DVM": (205, 6, 472, 3, 4, 3),
    "Add Senger": (140, 3, 340, 4, 1, 2),
    "Aden Lesch Sr.": (194, 4, 405, 3, 2, 3),
    "Admiral Senger": (132, 5, 448, 4, 3, 3),
    "Agness O'Keefe": (90, 9, 843, 5, 5, 5),
    "Aileen Barton": (84, 9, 763, 5, 5, 5),
    "Ailene Hermann": (281, 8, 699, 3, 5, 5),
    "Aiyanna Bruen PhD": (246, 4, 157, 3, 2, 1),
    "Ala Schmidt DDS": (349, 3, 363, 2, 1, 2),
    "Alannah Borer": (619, 4, 196, 1, 2, 1),
}
# ... and the segments of its table of segmented customers, the first 40 in its order.
PUBLISHED_SEGMENTS = {
    "Abbey O'Reilly DVM": "Loyal Customers", "Add Senger": "Potential Loyalist",
    "Aden Lesch Sr.": "Potential Loyalist", "Admiral Senger": "Loyal Customers",
    "Agness O'Keefe": "Champions", "Aileen Barton": "Champions",
    "Ailene Hermann": "Loyal Customers", "Aiyanna Bruen PhD": "Potential Loyalist",
    "Ala Schmidt DDS": "About To Sleep", "Alannah Borer": "Hibernating",
    "Alcide Rohan": "Loyal Customers", "Aleena Berge": "Potential Loyalist",
    "Alessandra Heaney": "Potential Loyalist", "Alethea Blanda": "Potential Loyalist",
    "Alex Armstrong": "At Risk", "Alex Bergnaum": "Potential Loyalist",
    "Alexis Cormier": "Champions", "Alf Lueilwitz": "Loyal Customers",
    "Alferd Ziemann": "Loyal Customers", "Alfred Metz": "Loyal Customers",
    "Almedia Yundt": "Potential Loyalist", "Alpheus Wilkinson": "Loyal Customers",
    "Alphonse Champlin V": "Others", "Alton Wintheiser": "Loyal Customers",
    "Alvah Bogisich": "Loyal Customers", "Alvera Balistreri": "Loyal Customers",
    "Alwina Wilkinson DDS": "Loyal Customers", "Alyssia Hickle": "Loyal Customers",
    "Amina Renner": "Loyal Customers", "Amit Langworth": "About To Sleep",
    "Anabel Jakubowski PhD": "Loyal Customers", "Anastasia Howe": "Needs Attention",
    "Anderson Quitzon": "Hibernating", "Andra Bosco": "Potential Loyalist",
    "Andra Goodwin": "Potential Loyalist", "Angeles McLaughlin PhD": "Hibernating",
    "Anie Hettinger": "About To Sleep", "Anjelica Klocko": "At Risk",
    "Antonio Bechtelar V": "Hibernating", "Ariane Hansen": "Loyal Customers",
}  # fmt: skip


@pytest.fixture(scope="module")
def rfm_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    if not ORDERS_CSV.exists():
        if in_ci():
            pytest.fail(f"{ORDERS_CSV} is missing in CI")
        pytest.skip(f"{ORDERS_CSV} is not beside this checkout")
    folder = tmp_path_factory.mktemp("rfm") / "rfm_package"
    shutil.copytree(ROOT / "examples" / "rfm_package", folder)
    from examples.rfm_package.load import load

    assert load(ORDERS_CSV, folder / "warehouse.duckdb") == {"customers": 995, "orders": 4906}
    return load_project(folder)


def _query(project: Project, sql: str) -> list[tuple[object, ...]]:
    connection = duckdb.connect(str(Path(project.config.root) / "warehouse.duckdb"), read_only=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def _segments_by_customer(project: Project) -> dict[str, str]:
    titles = {name: s.title for name, s in project.definitions.segments.items()}
    query = project.membership_query("duckdb", ANALYSIS_DATE)
    found: dict[str, str] = {}
    for segment, customer in _query(project, query.sql):
        assert customer not in found, f"{customer} is in two segments"
        found[str(customer)] = str(titles[str(segment)])
    return found


def test_the_published_scores(rfm_project: Project) -> None:
    names = ("recency_days", "transaction_count", "amount")
    names += ("recency_score", "frequency_score", "monetary_score")
    values = {name: ast.Name(name) for name in names}
    rfm_project.check()
    options = QueryOptions(person_ids=tuple(PUBLISHED_SCORES))
    query = compile_values_query(
        rfm_project.analyzer, values, get_dialect("duckdb"), ANALYSIS_DATE, options
    )
    rows = _query(rfm_project, query.sql(dialect="duckdb"))
    found = {row[0]: tuple(int(v) for v in row[1:]) for row in rows}  # type: ignore[call-overload]
    assert found == PUBLISHED_SCORES


def test_the_published_segments(rfm_project: Project) -> None:
    segments = _segments_by_customer(rfm_project)
    assert len(segments) == 995  # everybody in exactly one
    assert {c: segments[c] for c in PUBLISHED_SEGMENTS} == PUBLISHED_SEGMENTS


def _package_algorithm() -> dict[str, tuple[int, int, int]]:
    """The package's rfm_table_order written out: bins() is quantile(probs = seq(0, 1,
    length.out = 6)) without its ends, plus 1; a value's score is the bin it falls in."""
    orders: dict[str, list[tuple[date, float]]] = defaultdict(list)
    with ORDERS_CSV.open(encoding="utf-8") as file:
        for row in csv.DictReader(file):
            orders[row["customer_id"]].append(
                (date.fromisoformat(row["order_date"]), float(row["revenue"]))
            )
    recency = {c: (ANALYSIS_DATE.date() - max(d for d, _ in o)).days for c, o in orders.items()}
    frequency = {c: len(o) for c, o in orders.items()}
    monetary = {c: sum(r for _, r in o) for c, o in orders.items()}

    def quantile(values: list[float], p: float) -> float:  # R's type 7, by hand
        ordered = sorted(values)
        h = (len(ordered) - 1) * p
        low = int(h)
        if low + 1 >= len(ordered):
            return ordered[-1]
        return ordered[low] + (ordered[low + 1] - ordered[low]) * (h - low)

    def bins(values: dict[str, float]) -> list[float]:
        return [quantile(list(values.values()), k / 5) + 1 for k in range(1, 5)]

    edges = [bins(recency), bins(frequency), bins(monetary)]  # type: ignore[arg-type]
    return {
        c: (
            5 - sum(recency[c] >= e for e in edges[0]),
            1 + sum(frequency[c] >= e for e in edges[1]),
            1 + sum(monetary[c] >= e for e in edges[2]),
        )
        for c in orders
    }


def test_every_customer_as_the_package_and_the_reference_say(rfm_project: Project) -> None:
    expected_scores = _package_algorithm()
    rules = [
        (s.title, r, f, m)
        for s, (r, f, m) in zip(rfm_project.definitions.segments.values(), _RANGES, strict=False)
    ]
    expected = {}
    for customer, scores in expected_scores.items():
        expected[customer] = next(
            (
                title
                for title, *ranges in rules
                if all(lo <= v <= hi for v, (lo, hi) in zip(scores, ranges, strict=True))
            ),
            "Others",
        )
    found = _segments_by_customer(rfm_project)
    assert found == expected

    tables: dict[str, tuple[list[str], list[tuple[object, ...]]]] = {}
    connection = duckdb.connect(
        str(Path(rfm_project.config.root) / "warehouse.duckdb"), read_only=True
    )
    try:
        for table in ("customers", "orders"):
            cursor = connection.execute(f"SELECT * FROM {table}")
            tables[table] = ([d[0] for d in cursor.description], cursor.fetchall())
    finally:
        connection.close()
    definitions = [
        *rfm_project.definitions.segments.values(),
        *rfm_project.definitions.traits.values(),
        *rfm_project.definitions.priorities,
    ]
    reference = evaluate(definitions, rfm_project.config, tables, ANALYSIS_DATE)
    titles = {name: s.title for name, s in rfm_project.definitions.segments.items()}
    by_reference = {str(c): titles[name] for name, people in reference.items() for c in people}
    assert by_reference == expected


# The package's segment table (rfm_segment's ranges, in its order): R, F and M score ranges.
_RANGES = [
    ((4, 5), (4, 5), (4, 5)),
    ((2, 5), (3, 5), (3, 5)),
    ((3, 5), (1, 3), (1, 3)),
    ((4, 5), (1, 1), (1, 1)),
    ((3, 4), (1, 1), (1, 1)),
    ((2, 3), (2, 3), (2, 3)),
    ((2, 3), (1, 2), (1, 2)),
    ((1, 2), (2, 5), (2, 5)),
    ((1, 1), (4, 5), (4, 5)),
    ((1, 2), (1, 2), (1, 2)),
    ((1, 2), (1, 2), (1, 2)),
]
