"""The log layout of projects made by segql before one log table (Spark on Iceberg).

Those projects kept a run's rows in four logs, ``segql_runs_log``, ``segql_history_log``,
``segql_members_log`` and ``segql_segment_versions_log``, and wrote a ``committed`` row
after each swap. ``migrate_if_old`` copies what their readers saw into ``segql_log`` in
one INSERT (published history and versions with their tags, the head's snapshot, each
committed run as a ``ready`` row naming the run before it, the other runs' rows as they
were); the views are then replaced and the old logs dropped, in that order, so a
migration cut short is finished by the next run. Runs must not run while it migrates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from segql.runs.swap_commit import LOG, LOG_COLUMNS, log_insert, parse_template

if TYPE_CHECKING:
    from segql.engines import EngineAdapter as Warehouse
    from segql.runs.swap_commit import SwapTables

OLD_LOGS = (
    "segql_runs_log", "segql_history_log", "segql_members_log", "segql_segment_versions_log",
)  # fmt: skip

_RUN_COLUMNS = ("as_of", "started_at", "finished_at", "segments", "summary", "mode",
                "full_reason", "recorded_at")  # fmt: skip
_PUBLISHED = """
    SELECT run_id, commit_seq FROM :runs_log WHERE status = 'committed'
    UNION
    SELECT run_id, commit_seq FROM :head WHERE run_id IS NOT NULL
"""
_HISTORY = """
    SELECT 'history' AS kind, h.run_id, h.commit_seq, h.event_id, h.segment, h.person_id,
      h.change, h.as_of, h.version, h.reason
    FROM :history_log AS h JOIN (:published) AS c
      ON c.run_id = h.run_id AND c.commit_seq = h.commit_seq
"""
_MEMBERS = """
    SELECT 'member' AS kind, m.run_id, m.commit_seq, m.segment, m.person_id, m.entered_at,
      m.entered_run_id
    FROM :members_log AS m JOIN (SELECT DISTINCT run_id, commit_seq FROM :head) AS h
      ON h.run_id = m.run_id AND h.commit_seq = m.commit_seq
"""
_VERSIONS = """
    SELECT 'version' AS kind, v.run_id, v.commit_seq, v.segment, v.version,
      v.definition_hash, v.source_text, v.created_at, v.retired_at
    FROM :versions_log AS v JOIN (:published) AS c
      ON c.run_id = v.run_id AND c.commit_seq = v.commit_seq
"""
# Each committed run as one ready row naming the one before it (what segql_commits reads).
_COMMITTED = """
    SELECT 'run' AS kind, run_id, commit_seq,
      LAG(run_id) OVER (ORDER BY commit_seq) AS parent_run_id, 'ready' AS status,
      as_of, started_at, finished_at, segments, summary, mode, full_reason, recorded_at
    FROM (
      SELECT r.run_id, MAX(c.commit_seq) AS commit_seq, MAX(r.as_of) AS as_of,
        MIN(r.started_at) AS started_at, MAX(r.finished_at) AS finished_at,
        MAX(r.segments) AS segments, MAX(r.summary) AS summary, MAX(r.mode) AS mode,
        MAX(r.full_reason) AS full_reason, MAX(r.recorded_at) AS recorded_at
      FROM :runs_log AS r JOIN (:published) AS c ON c.run_id = r.run_id
      GROUP BY r.run_id
    ) AS committed
"""
_OTHER_RUNS = """
    SELECT 'run' AS kind, run_id, commit_seq, status, error, as_of, started_at, finished_at,
      segments, summary, mode, full_reason, recorded_at
    FROM :runs_log WHERE run_id NOT IN (SELECT run_id FROM (:published) AS c)
"""


@dataclass(frozen=True)
class OldLayout:
    """The old logs of one project schema, found by ``migrate_if_old``."""

    tables: SwapTables

    def drop_old(self, warehouse: Warehouse) -> None:
        """The last step: the views no longer read the old logs. One table a statement
        (Spark drops one), the runs log last: it is what ``migrate_if_old`` looks for."""
        for name in reversed(OLD_LOGS):
            drop = exp.Drop(tables=[self.tables.table(name)], kind="TABLE", exists=True)
            warehouse.run(drop)


def migrate_if_old(tables: SwapTables, warehouse: Warehouse) -> OldLayout | None:
    """Copy an old layout's published rows into ``segql_log`` (once); the old layout, for
    the caller to replace the views and then drop it, or None."""
    schema = tables.store.schema
    if warehouse.table_columns(f"{schema}.{OLD_LOGS[0]}") is None:
        return None
    count = exp.select(exp.Count(this=exp.Star())).from_(tables.table(LOG))
    if not warehouse.run(count)[0][0]:  # not copied yet (the copy is one INSERT)
        warehouse.run(log_insert(tables.table(LOG), copy_query(tables)))
    return OldLayout(tables)


def copy_query(tables: SwapTables) -> exp.Query:
    names = {
        "head": tables.table("segql_head"),
        "runs_log": tables.table(OLD_LOGS[0]),
        "history_log": tables.table(OLD_LOGS[1]),
        "members_log": tables.table(OLD_LOGS[2]),
        "versions_log": tables.table(OLD_LOGS[3]),
    }
    published = parse_template(_PUBLISHED, **names)
    parts = []
    for template in (_HISTORY, _MEMBERS, _VERSIONS, _COMMITTED, _OTHER_RUNS):
        select = parse_template(template, **names, published=published.copy())
        assert isinstance(select, exp.Select)
        parts.append(every_column(select))
    return exp.union(*parts, distinct=False)


def every_column(select: exp.Select) -> exp.Select:
    """``select`` with the log's columns in order, the ones it lacks typed nulls."""
    given = {e.alias_or_name: e for e in select.expressions}
    columns = []
    for column, kind in LOG_COLUMNS:
        value = given[column].unalias() if column in given else exp.cast(exp.null(), kind)
        columns.append(exp.alias_(value, column, quoted=True))
    return select.select(*columns, append=False)
