"""The report page's template: data text is escaped everywhere it lands, and the page is
one self-contained file (no template or static file left to fetch)."""

from __future__ import annotations

from datetime import datetime

from segql.downstream.report import ReportData, RunLogRow, RunPoint, SegmentFigures, render_report

HOSTILE = "<script>alert(\"x\")</script> & 'q'"
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27;"


def _data(title: str, description: str, error: str) -> ReportData:
    figure = SegmentFigures(
        "odd",
        title,
        description,
        in_project=True,
        size=3,
        entered=1,
        exited=1,
        exit_reasons={"rules": 1},
        points=[
            RunPoint(1, datetime(2026, 10, 1), 3, 3, 0),
            RunPoint(2, datetime(2026, 11, 1), 3, 1, 1),
        ],
    )
    other = SegmentFigures("other", None, None, in_project=True, size=2)
    run = RunLogRow(
        "r1", datetime(2026, 11, 1), datetime(2026, 11, 1, 1), datetime(2026, 11, 1, 1, 0, 2),
        "failed", None, error, 0, 0,
    )  # fmt: skip
    return ReportData(
        project="demo",
        schema="segql",
        days=30,
        last_as_of=datetime(2026, 11, 1),
        since=datetime(2026, 10, 2),
        segments=[figure, other],
        overlap_names=["odd", "other"],
        overlap={("odd", "odd"): 3, ("other", "other"): 2, ("odd", "other"): 1},
        runs=[run],
        run_counts={"committed": 2, "failed": 1},
    )


def test_title_description_and_error_with_script_and_quotes_are_escaped() -> None:
    page = render_report(_data(HOSTILE, HOSTILE, HOSTILE))
    assert "<script>alert" not in page
    assert 'alert("x")' not in page and "'q'" not in page
    # The heading, the overview row, the description, the run log's error and its tooltip.
    assert page.count(ESCAPED) >= 5
    assert f"<h3>{ESCAPED}</h3>" in page
    assert f'<p class="desc">{ESCAPED}</p>' in page
    assert f'title="{ESCAPED}"' in page
    # The filter's search text is the lower-cased name and title, escaped in the attribute.
    assert f'data-search="odd {ESCAPED.lower()}"' in page


def test_page_inlines_its_css_and_script() -> None:
    page = render_report(_data("Odd", "", ""))
    assert page.count("<script>") == 1 and page.count("<style>") == 1
    assert "document.body.setAttribute('data-ready', 'true');" in page
    assert ".kpi-value {" in page
    assert "<link" not in page and " src=" not in page
