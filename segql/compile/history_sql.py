"""Conditions on recorded membership as SQL (language.md 9.6).

The changes of committed runs whose as-of is before ``T`` are read once (``segql_recorded``);
each condition is a select from them of the ids (as text, as ``segql_history`` keeps them)
of the people for whom it holds. A run never sees its own changes, so a rerun at the same
as-of gives the same answer, and a segment may name itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from segql.language import ast

HISTORY_TABLE = "segql_history"
RUNS_TABLE = "segql_runs"


@dataclass(frozen=True)
class HistorySource:
    """Where the recorded changes are: ``history`` (the columns of ``segql_history``), and
    ``runs`` (``segql_runs``) to keep only committed runs' rows, or None where every row
    is committed (dbt's incremental history model)."""

    history: exp.Expr
    runs: exp.Table | None


def project_history(schema: str) -> HistorySource:
    """segql's own tables in the project's schema."""
    return HistorySource(_table(schema, HISTORY_TABLE), _table(schema, RUNS_TABLE))


def no_history(alias: str = "segql_no_history") -> HistorySource:
    """No recorded runs (segql's tables not made yet): every condition on them is false."""
    columns = (
        ("segment", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("change", "VARCHAR"),
        ("as_of", "TIMESTAMP"),
        ("commit_seq", "BIGINT"),
        ("run_id", "VARCHAR"),
    )
    empty = exp.select(
        *(exp.alias_(exp.cast(exp.null(), kind), name, quoted=True) for name, kind in columns)
    ).where(exp.false())
    return HistorySource(empty.subquery(alias), runs=None)


def _table(schema: str, name: str) -> exp.Table:
    return exp.Table(
        this=exp.to_identifier(name, quoted=True), db=exp.to_identifier(schema, quoted=True)
    )


def _column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def recorded_select(source: HistorySource, now: exp.Expr, segments: list[str]) -> exp.Select:
    """The changes every condition reads, read once: those of ``segments`` recorded by
    committed runs before ``now`` (``T``)."""
    names = [exp.Literal.string(name) for name in sorted(set(segments))]
    filters: list[exp.Expr] = [
        _column("segment").isin(*names),
        exp.LT(this=_column("as_of"), expression=now),
    ]
    if source.runs is not None:
        committed = (
            exp.select(_column("run_id"))
            .from_(source.runs.copy(), copy=False)
            .where(_column("status").eq(exp.Literal.string("committed")), copy=False)
        )
        filters.append(exp.In(this=_column("run_id"), query=committed.subquery(copy=False)))
    columns = [_column(name) for name in ("segment", "person_id", "change", "as_of", "commit_seq")]
    return (
        exp.select(*columns)
        .from_(source.history.copy(), copy=False)
        .where(_all(filters), copy=False)
    )


def history_select(test: ast.HistoryTest, recorded: str, since: exp.Expr | None) -> exp.Select:
    """``person_id`` of each person the test holds for, once, from the CTE ``recorded``
    (``recorded_select``). ``since`` is ``T - D`` for the tests that take a duration."""
    filters: list[exp.Expr] = [_column("segment").eq(exp.Literal.string(test.segment))]
    select = exp.select(_column("person_id")).from_(
        exp.to_identifier(recorded, quoted=True), copy=False
    )
    if test.kind == "member_for":
        assert since is not None
        select = select.where(_all(filters), copy=False).group_by(_column("person_id"), copy=False)
        last_enter = _latest("enter", "commit_seq")
        last_exit = exp.Coalesce(
            this=_latest("exit", "commit_seq"), expressions=[exp.Literal.number(-1)]
        )
        entered_by = exp.LTE(this=_latest("enter", "as_of"), expression=since)
        return select.having(
            _all([exp.GT(this=last_enter, expression=last_exit), entered_by]), copy=False
        )
    change = "enter" if test.kind in ("entered", "ever") else "exit"
    filters.append(_column("change").eq(exp.Literal.string(change)))
    if since is not None:
        filters.append(exp.GT(this=_column("as_of"), expression=since))
    return select.distinct(copy=False).where(_all(filters), copy=False)


def _latest(change: str, column: str) -> exp.Expr:
    """``MAX(CASE WHEN change = 'enter' THEN column END)``."""
    when = exp.If(this=_column("change").eq(exp.Literal.string(change)), true=_column(column))
    return exp.Max(this=exp.Case(ifs=[when]))


def _all(parts: list[exp.Expr]) -> exp.Expr:
    result = parts[0]
    for part in parts[1:]:
        result = exp.And(this=result, expression=part)
    return result
