"""A demo project for the tests of ``segql ui``: data and definitions that carry markup
(a segment title, a people column value and an event name holding ``<script>``), tags,
and two committed runs."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb

from segql.engines import connect
from segql.project import load_project
from segql.runs.runner import Runner
from segql.starters.demo import init_project

AS_OFS = (datetime(2026, 9, 20), datetime(2026, 10, 11), datetime(2026, 11, 1))
SCRIPT = '<script>alert("x")</script>'
EVENT = "<img src=x onerror=alert(1)>"
MARKED_PERSON = 1  # has the markup in `country` and did the EVENT


def make_ui_project(folder: Path, runs: tuple[datetime, ...] = AS_OFS) -> Path:
    init_project(folder, people=300, seed=11, anchor=date(2026, 11, 1))
    connection = duckdb.connect(str(folder / "warehouse.duckdb"))
    try:
        connection.execute(
            "UPDATE people SET country = ? WHERE person_id = ?", [SCRIPT, MARKED_PERSON]
        )
        connection.execute(
            "INSERT INTO events (person_id, event_type, occurred_at) VALUES (?, ?, ?)",
            [MARKED_PERSON, EVENT, datetime(2026, 9, 1)],
        )
    finally:
        connection.close()
    escaped_event = EVENT.replace("`", "``")
    # Titles are double-quoted, with \" and \\ as escapes.
    title = '"' + SCRIPT.replace("\\", "\\\\").replace('"', '\\"') + '"'
    (folder / "segments" / "marked.segql").write_text(
        "segment marked\n"
        f"  title {title}\n"
        "  tags 'markup', 'growth'\n"
        f"  where did `{escaped_event}` or country = '{SCRIPT}'\n",
        encoding="utf-8",
    )
    (folder / "segments" / "wide.segql").write_text(
        "segment active_people\n  title \"Anyone active\"\n  tags 'growth'\n"
        "  where did any within 365 days\n",
        encoding="utf-8",
    )
    if runs:
        project = load_project(folder)
        warehouse = connect(project.config)
        try:
            for as_of in runs:
                Runner(project, warehouse).run(None, as_of)
        finally:
            warehouse.close()
    return folder
