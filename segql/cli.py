"""The ``segql`` command line.

Every command shares one error handler: a ``SegqlError`` is printed as one block on
standard error with exit status 1; anything else is an internal error, shown with its
traceback only under ``--debug``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, NoReturn

import click

from segql.compile.dialect import available_dialects
from segql.errors import SegqlError
from segql.language.ast import Segment, Trait
from segql.language.parser import parse
from segql.language.printer import format_source
from segql.output import FORMATS, Format, render
from segql.project import Project, load_project
from segql.timeutil import parse_as_of


class Context:
    """What every command gets: where the project is, and whether to show tracebacks."""

    def __init__(self, project_dir: str | None, debug: bool):
        self.project_dir = project_dir
        self.debug = debug

    def project(self) -> Project:
        return load_project(self.project_dir or ".")


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into one clear message and an exit status instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        context = click.get_current_context().find_object(Context)
        debug = bool(context is not None and context.debug)
        try:
            return command(*args, **kwargs)
        except SegqlError as error:
            if debug:
                traceback.print_exc()
            click.echo(error.render(), err=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except RecursionError:  # a rule nested past what the compiler and sqlglot can take
            too_deep = SegqlError(
                "the rules nest too deeply to compile",
                help="split long chains (a + b + ... or traits on traits) into fewer steps",
            )
            click.echo(too_deep.render(), err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # the reader went away (| head): stop quietly
            sys.stderr.close()
            sys.exit(0)
        except Exception as error:  # an internal error: say so plainly
            if debug:
                traceback.print_exc()
            else:
                click.echo(
                    f"internal error: {type(error).__name__}: {error}\n"
                    "run again with --debug for the traceback",
                    err=True,
                )
            sys.exit(2)

    return wrapper


def as_of_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--as-of",
        "as_of",
        metavar="TIME",
        help="Evaluate at this time (ISO date or date-time, UTC unless it gives an offset).",
    )(command)


def parse_as_of_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_as_of(value)
    except ValueError:
        raise SegqlError(
            f"--as-of '{value}' is not a time", help="write it as 2026-01-31 or 2026-01-31T12:00:00"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--project",
    "project_dir",
    metavar="DIR",
    help="Project folder (default: the nearest segql.toml upward from here).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="segql")
@click.pass_context
def main(ctx: click.Context, project_dir: str | None, debug: bool) -> None:
    """segql: segment rules compiled to warehouse SQL, with a membership history."""
    ctx.obj = Context(project_dir, debug)


@main.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False))
@click.option("--people", type=int, default=10_000, show_default=True, help="Demo size.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the demo data.")
@click.option("--anchor", metavar="DATE", help="Last day of the demo data (default: today, UTC).")
@click.pass_obj
@handle_errors
def init(obj: Context, folder: str, people: int, seed: int, anchor: str | None) -> None:
    """Make a new project with a demo DuckDB warehouse you can run at once."""
    from segql.starters.demo import anchor_from, init_project

    show = progress_printer(quiet=False)
    counts = init_project(Path(folder), people, seed, anchor_from(anchor), show)
    sizes = ", ".join(f"{n:,} {table}" for table, n in counts.items())
    click.echo(f"created a segql project in {folder} with a demo warehouse ({sizes})")
    click.echo(f"next: segql --project {folder} run")


STRICT = click.option(
    "--strict", is_flag=True, help="Treat warnings (such as unknown event names) as errors."
)


def warn(text: str) -> None:
    click.echo(text, err=True)


@main.command()
@STRICT
@click.pass_obj
@handle_errors
def check(obj: Context, strict: bool) -> None:
    """Validate segments against the warehouse schema, before anything runs."""
    from segql.checks.event_names import report_unseen, unseen_events
    from segql.checks.jsoncheck import properties_warnings
    from segql.engines import connect

    project = obj.project()
    warehouse = connect(project.config, read_only=True)
    try:
        project.read_catalog(warehouse)
        project.check()
        unseen = unseen_events(project, warehouse)
        json_warnings = properties_warnings(project, warehouse)
    finally:
        warehouse.close()
    for warning in json_warnings:
        click.echo(f"warning: {warning}", err=True)
    report_unseen(unseen, strict, warn)
    segments, traits = len(project.definitions.segments), len(project.definitions.traits)
    click.echo(f"ok: {segments} segments and {traits} traits check against the warehouse")


@main.command()
@click.argument("segments", nargs=-1)
@click.option(
    "--dialect",
    "-d",
    default="duckdb",
    show_default=True,
    type=click.Choice(sorted(available_dialects())),
    help="SQL dialect of the warehouse.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for tools.",
)
@click.pass_obj
@handle_errors
def plan(obj: Context, segments: tuple[str, ...], dialect: str, output_format: str) -> None:
    """Show what the query reads and computes: each source, its passes and aggregates."""
    import json

    from segql.compile.plan import describe_plan

    query_plan = obj.project().plan(dialect=dialect, segments=segments)
    if output_format == "json":
        click.echo(json.dumps(query_plan.to_dict(), indent=2))
    else:
        click.echo(describe_plan(query_plan), nl=False)


@main.command()
@click.argument("segments", nargs=-1)
@click.option(
    "--dialect",
    "-d",
    default="duckdb",
    show_default=True,
    type=click.Choice(sorted(available_dialects())),
    help="SQL dialect of the warehouse.",
)
@as_of_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the SQL to a file.")
@click.pass_obj
@handle_errors
def compile(
    obj: Context, segments: tuple[str, ...], dialect: str, as_of: str | None, output: str | None
) -> None:
    """Print the SQL that returns (segment, person_id) for every member.

    Without --as-of the time is a bind parameter named as_of.
    """
    project = obj.project()
    sql = project.compile(dialect=dialect, as_of=parse_as_of_option(as_of), segments=segments)
    if not project.catalog.is_known:
        click.echo(
            "warning: the warehouse could not be read, so names were not checked against it "
            "and event properties not found as columns are read from the JSON properties column",
            err=True,
        )
    if output:
        Path(output).write_text(sql + ";\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(sql + ";")


@main.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--check", "check_only", is_flag=True, help="Only report files that would change.")
@click.pass_obj
@handle_errors
def fmt(obj: Context, files: tuple[str, ...], check_only: bool) -> None:
    """Rewrite .segql files in canonical form (- reads standard input and prints it).

    Without FILES, every .segql file of the project.
    """
    if files == ("-",):
        click.echo(format_source(sys.stdin.read(), "<stdin>"), nl=False)
        return
    paths = [Path(f) for f in files]
    if not paths:
        project = obj.project()
        folder = project.config.root / project.config.segments_dir
        paths = sorted(folder.rglob("*.segql"))
    changed = []
    for path in paths:
        try:
            text = path.read_bytes().decode("utf-8")  # as stored: a CR in a string stays a CR
        except OSError as error:
            raise SegqlError(f"cannot read {path}: {error.strerror}") from None
        formatted = format_source(text, str(path))
        if formatted != text:
            changed.append(path)
            if not check_only:
                _write_atomically(path, formatted)
    verb = "would reformat" if check_only else "reformatted"
    for path in changed:
        click.echo(f"{verb} {path}")
    click.echo(f"{len(changed)} of {len(paths)} files {verb}", err=True)
    if check_only and changed:
        sys.exit(1)


def _write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file so a crash never leaves half a file."""
    temporary = path.with_name(path.name + ".segql-tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def format_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output as an aligned table, CSV (formulas escaped; csv-raw: as stored) or JSON.",
    )(command)


def progress_printer(quiet: bool) -> Callable[[str], None]:
    """Progress lines on standard error, with the time since the command started."""
    started = time.monotonic()

    def show(message: str) -> None:
        if not quiet:
            click.echo(f"[{time.monotonic() - started:6.1f}s] {message}", err=True)

    return show


@main.command()
@click.argument("segments", nargs=-1)
@as_of_option
@click.option(
    "--prune",
    is_flag=True,
    help="Also exit the members of segments removed from the project (a run of every "
    "segment always does).",
)
@click.option(
    "--wait", type=float, default=0.0, metavar="SECONDS", help="Wait for another run's lock."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.option(
    "--full", is_flag=True, help="Recompute every person's values (no incremental update)."
)
@STRICT
@format_option
@click.pass_obj
@handle_errors
def run(
    obj: Context,
    segments: tuple[str, ...],
    as_of: str | None,
    prune: bool,
    wait: float,
    quiet: bool,
    full: bool,
    strict: bool,
    fmt: Format,
) -> None:
    """Evaluate segments, diff against current members, record the changes.

    Prints each segment's size, how many entered and exited, and the run's time.
    """
    from segql.checks.event_names import report_unseen, unseen_events
    from segql.engines import connect
    from segql.runs.incremental import describe_membership, describe_mode
    from segql.runs.runner import Runner

    project = obj.project()
    show = progress_printer(quiet)
    show("opening the warehouse")
    warehouse = connect(project.config, wait=wait)
    try:
        project.read_catalog(warehouse)
        project.check()
        report_unseen(unseen_events(project, warehouse), strict, warn)
        result = Runner(project, warehouse, show, full=full).run(
            segments, parse_as_of_option(as_of), prune=prune, wait=wait
        )
    finally:
        warehouse.close()
    seconds = round(result.seconds, 2)
    # The time is the whole run's (one query for every segment): said once, below.
    rows = [(s.segment, s.members, s.entered, s.exited) for s in result.segments]
    click.echo(render(["segment", "members", "entered", "exited"], rows, fmt))
    if fmt == "table":
        notes = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.data.items() if v)
        click.echo(
            f"\nrun {result.run_id[:12]} committed as #{result.commit_seq} at as-of "
            f"{result.as_of:%Y-%m-%d %H:%M:%S}: {result.changes} changes in {seconds} s "
            f"(all segments in one query)",
        )
        click.echo(
            describe_mode(result.mode, result.mode_reason, result.recomputed, result.by_deltas)
        )
        if result.carried:
            click.echo(describe_membership(result.carried, result.evaluated, len(result.segments)))
        if notes:
            click.echo(f"data: {notes}")


@main.command("retire-run")
@click.argument("run_id")
@click.option("--wait", type=float, default=0.0, metavar="SECONDS", help="Wait for a running run.")
@click.pass_obj
@handle_errors
def retire_run_command(obj: Context, run_id: str, wait: float) -> None:
    """Undo the latest committed run (one made at a wrong --as-of, say).

    Appends the opposite of each of its changes (reason run_retired), puts the members back
    as they were before it and marks it retired; later runs no longer compare with its
    as-of time. History is never rewritten. See docs/runs.md.
    """
    from segql.engines import connect
    from segql.runs.retire import retire_run

    project = obj.project()
    warehouse = connect(project.config, wait=wait)
    try:
        done = retire_run(project, warehouse, run_id, wait=wait)
    finally:
        warehouse.close()
    since = f"as-of {done.as_of:%Y-%m-%d %H:%M:%S}" if done.as_of else "any as-of"
    click.echo(
        f"run {done.retired_run_id[:12]} retired as #{done.commit_seq}: {done.changes} "
        f"changes undone; the next run may be at {since} or later"
    )


class _ReadSession:
    """A read-only session for the commands that only look at recorded membership."""

    def __init__(self, obj: Context):
        from segql.engines import connect
        from segql.reading.reports import Reports

        self.project = obj.project()
        self.warehouse = connect(self.project.config, read_only=True)
        try:
            self.reports = Reports(self.warehouse, self.project.config.warehouse.schema)
        except BaseException:
            self.warehouse.close()
            raise

    def __enter__(self) -> _ReadSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.warehouse.close()


@main.command("list")
@format_option
@click.pass_obj
@handle_errors
def list_definitions(obj: Context, fmt: Format) -> None:
    """Segments and traits: title, description, tags, version and size at the last run."""
    from segql.engines import connect
    from segql.reading.reports import Reports

    project = obj.project()
    versions: dict[str, int] = {}
    sizes: dict[str, int] = {}
    warehouse = connect(project.config, read_only=True)
    try:
        schema = project.config.warehouse.schema
        if warehouse.table_columns(f"{schema}.segql_meta") is not None:
            reports = Reports(warehouse, schema)
            versions, sizes = reports.versions(), reports.sizes()
    finally:
        warehouse.close()
    definitions: list[tuple[str, Segment | Trait]] = [
        *(("segment", d) for d in project.definitions.segments.values()),
        *(("trait", d) for d in project.definitions.traits.values()),
    ]
    tagged = any(getattr(d, "tags", None) for _, d in definitions)
    columns = ["kind", "name", "title", "description", *(["tags"] if tagged else [])]
    rows = []
    for kind, definition in definitions:
        tags = [", ".join(getattr(definition, "tags", None) or ())] if tagged else []
        recorded = kind == "segment" and definition.name in versions
        rows.append(
            (
                kind,
                definition.name,
                definition.title,
                definition.description,
                *tags,
                versions.get(definition.name),
                sizes.get(definition.name, 0) if recorded else None,
            )
        )
    click.echo(render([*columns, "version", "members"], rows, fmt))


@main.command()
@click.argument("segment")
@click.option("--limit", type=int, default=None, help="At most this many members.")
@click.option(
    "--columns",
    metavar="A,B,...",
    default="",
    help="Columns of the people table and traits to show beside each member.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file instead.")
@format_option
@click.pass_obj
@handle_errors
def members(
    obj: Context, segment: str, limit: int | None, columns: str, out: str | None, fmt: Format
) -> None:
    """The current members of a segment (as of the last run), sorted by id."""
    from segql.reading.members import member_rows

    wanted = [c.strip() for c in columns.split(",") if c.strip()]
    with _ReadSession(obj) as session:
        session.project.select([segment])  # an unknown name is an error, with a suggestion
        rows = member_rows(
            session.project, session.warehouse, session.reports, segment, wanted, limit
        )
    text = render(rows.columns, rows.rows, fmt)
    if out is None:
        click.echo(text)
        return
    _write_atomically(Path(out), text + "\n")
    click.echo(f"wrote {len(rows.rows)} members of {segment} to {out}", err=True)


@main.command()
@click.argument("segment")
@click.option("--person", metavar="ID", help="Only this person's changes.")
@click.option("--since", metavar="TIME", help="Only changes of runs at or after this as-of.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many.")
@format_option
@click.pass_obj
@handle_errors
def history(
    obj: Context,
    segment: str,
    person: str | None,
    since: str | None,
    limit: int | None,
    fmt: Format,
) -> None:
    """Every enter and exit of a segment, in commit order."""
    with _ReadSession(obj) as session:
        rows = session.reports.history(segment, person, parse_as_of_option(since), limit)
        if not rows.rows and segment not in session.project.segment_names:
            session.project.select([segment])  # neither defined nor in the history
    click.echo(render(rows.columns, rows.rows, fmt))


@main.command()
@click.argument("segments", nargs=-1)
@click.option("--days", type=int, default=30, show_default=True, help="Length of the period.")
@format_option
@click.pass_obj
@handle_errors
def stats(obj: Context, segments: tuple[str, ...], days: int, fmt: Format) -> None:
    """Size now, entered and exited in the last N days, and growth over them."""
    with _ReadSession(obj) as session:
        names = list(segments) or session.project.segment_names
        rows = session.reports.stats(names, days)
        period = session.reports.stats_period(days)
    click.echo(render(rows.columns, rows.rows, fmt))
    if fmt == "table":
        click.echo(period)


@main.command()
@click.argument("segments", nargs=-1, required=True)
@format_option
@click.pass_obj
@handle_errors
def overlap(obj: Context, segments: tuple[str, ...], fmt: Format) -> None:
    """Pairwise overlap of segments: people in both, as counts and percentages."""
    with _ReadSession(obj) as session:
        rows = session.reports.overlap(list(segments))
    click.echo(render(rows.columns, rows.rows, fmt))


@main.command()
@click.option(
    "--since",
    type=int,
    default=None,
    metavar="SEQ",
    help="Changes committed after this commit_seq (default 0).",
)
@click.option(
    "--consumer",
    metavar="NAME",
    help="Read after this named consumer's cursor, then move the cursor past what was shown.",
)
@click.option("--limit", type=int, default=None, help="At most this many changes.")
@format_option
@click.pass_obj
@handle_errors
def changes(
    obj: Context, since: int | None, consumer: str | None, limit: int | None, fmt: Format
) -> None:
    """Enter and exit changes after a commit_seq, in commit order (the changes feed).

    Rows are written as they are read (memory stays flat). With --consumer, the cursor
    moves past the changes shown only once all of them were written and, into a pipe,
    read: a broken pipe, an error or Ctrl-C moves nothing (at least once, resumable).
    --limit N shows exactly N; the next call resumes at the change after them."""
    from segql.downstream.consumers import (
        Consumer,
        change_row,
        feed_order,
        iter_changes,
        latest_commit_seq,
        require_tables,
    )
    from segql.engines import connect
    from segql.reading.reports import CHANGE_COLUMNS, Change
    from segql.runs.store import Store
    from segql.stream import wait_until_read, write_rows

    if consumer is not None and since is not None:
        raise SegqlError("give --since or --consumer, not both")
    if limit is not None and limit < 0:
        raise SegqlError("--limit must be 0 or more")
    project = obj.project()
    schema = project.config.warehouse.schema
    warehouse = connect(project.config, read_only=consumer is None)
    out = sys.stdout

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    try:
        if consumer is None:
            require_tables(warehouse, schema)
            stream = iter_changes(warehouse, Store(schema), since or 0)
            shown = (change_row(c) for c in islice(stream, limit))
            _write_feed(lambda: write_rows(CHANGE_COLUMNS, shown, fmt, write))
            return
        reader = Consumer(warehouse, schema, consumer)
        start = reader.cursor
        upto = latest_commit_seq(warehouse, reader.store)
        handed: list[Change] = []

        def rows() -> Iterator[tuple[Any, ...]]:
            for change in reader.changes_upto(start, upto, limit):
                handed[:] = [change]
                yield change_row(change)

        count = _write_feed(lambda: write_rows(CHANGE_COLUMNS, rows(), fmt, write))
        if not wait_until_read(out):
            _broken_pipe()
        if limit is None or count < limit:
            # to the end of the feed, past the runs without changes too
            reader.commit(max((upto, ""), start, key=feed_order))
        elif handed:
            reader.commit((handed[-1].commit_seq, handed[-1].event_id))
    finally:
        warehouse.close()


def _write_feed(write: Callable[[], int]) -> int:
    """Run a writer of rows to stdout; a reader that went away ends the command."""
    try:
        return write()
    except BrokenPipeError:
        _broken_pipe()


def _broken_pipe() -> NoReturn:
    # Nothing more can reach the reader; keep Python from failing again at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SegqlError(
        "the reader closed the pipe before reading every change shown; nothing was committed",
        help="the same changes come again on the next read; use --limit N to take N",
    )


@main.command()
@click.argument("condition")
@as_of_option
@click.option("--sample", type=int, default=10, show_default=True, help="How many ids to show.")
@format_option
@click.pass_obj
@handle_errors
def preview(obj: Context, condition: str, as_of: str | None, sample: int, fmt: Format) -> None:
    """Count the people a condition selects, with a sample; nothing is written.

    Without --as-of the time is the last committed run's as-of (now before any run)."""
    from segql.engines import connect
    from segql.reading.preview import last_committed_as_of, preview_condition

    project = obj.project()
    warehouse = connect(project.config, read_only=True)
    try:
        when = parse_as_of_option(as_of) or last_committed_as_of(project, warehouse)
        count, ids = preview_condition(project, warehouse, condition, when, sample)
    finally:
        warehouse.close()
    if fmt == "table":
        click.echo(f"{count} people match as of {when:%Y-%m-%d %H:%M:%S}")
        click.echo(render(["person_id"], [(i,) for i in ids], fmt))
    else:
        click.echo(render(["matching", "sample"], [(count, [str(i) for i in ids])], fmt))


@main.command()
@click.option("--status", is_flag=True, help="Show each action's cursor and parked changes.")
@click.option("--retry-failed", is_flag=True, help="Send parked changes again.")
@click.option("--resync", metavar="ACTION", help="Make a destination hold exactly the segment.")
@click.option("--action", "actions", multiple=True, metavar="NAME", help="Only this action.")
@click.option("--wait", type=float, default=0.0, metavar="SECONDS", help="Wait for the lock.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@format_option
@click.pass_obj
@handle_errors
def dispatch(
    obj: Context,
    status: bool,
    retry_failed: bool,
    resync: str | None,
    actions: tuple[str, ...],
    wait: float,
    quiet: bool,
    fmt: Format,
) -> None:
    """Deliver new enter/exit changes to the [[actions]] of segql.toml (at least once)."""
    from segql.downstream.dispatch import run_dispatch, run_resync, run_retry_failed, run_status

    if status + retry_failed + (resync is not None) > 1:
        raise SegqlError("give one of --status, --retry-failed and --resync")
    folder = obj.project_dir or "."
    show = progress_printer(quiet)
    if status:
        summary, failed = run_status(folder, show)
        if fmt == "json":  # one document: {"actions": [...], "parked": [...]}
            documents = [json.loads(render(r.columns, r.rows, fmt)) for r in (summary, failed)]
            click.echo(json.dumps(dict(zip(("actions", "parked"), documents, strict=True)),
                                  indent=2, ensure_ascii=False))  # fmt: skip
            return
        click.echo(render(summary.columns, summary.rows, fmt))
        if fmt == "table":
            click.echo("\nparked changes:")
        click.echo(render(failed.columns, failed.rows, fmt))
        return
    if resync is not None:
        rows = run_resync(folder, resync, show, wait)
        click.echo(render(rows.columns, rows.rows, fmt))
        return
    run = run_retry_failed if retry_failed else run_dispatch
    rows = run(folder, list(actions) or None, show, wait)
    click.echo(render(rows.columns, rows.rows, fmt))


@main.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="Where to write the page.",
)
@click.option("--days", type=int, default=30, show_default=True, help="Length of the period.")
@click.pass_obj
@handle_errors
def report(obj: Context, out: Path, days: int) -> None:
    """Write a self-contained HTML report: sizes, history, overlap and runs."""
    from segql.downstream.report import write_report

    with _ReadSession(obj) as session:
        path = write_report(session.warehouse, session.project, days, out)
    click.echo(f"wrote {path}")


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option("--read-only", is_flag=True, help="Refuse every change (exclude, save).")
@click.pass_obj
@handle_errors
def ui(obj: Context, port: int, read_only: bool) -> None:
    """Serve the local app on 127.0.0.1: segments, members, people and a builder.

    Prints the address to open, with a token that is new at each start (docs/ui.md)."""
    from segql.ui import serve

    serve(obj.project().config.root, port, read_only, click.echo)


@main.group()
def dbt() -> None:
    """segql inside dbt: models that dbt builds."""


@dbt.command("generate")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Models folder.")
@click.option("--dialect", default=None, help="SQL dialect of the dbt target.")
@click.pass_obj
@handle_errors
def dbt_generate(obj: Context, out: str, dialect: str | None) -> None:
    """Write the segql models (membership, history, one per segment) into a dbt project."""
    from segql.downstream.dbt import generate_dbt

    paths = generate_dbt(obj.project(), Path(out), dialect=dialect)
    for path in paths:
        click.echo(f"wrote {path}")


@main.group()
def templates() -> None:
    """Ready-made segments: list them, show one, or add one to the project."""


@templates.command("list")
@format_option
@handle_errors
def templates_list(fmt: Format) -> None:
    """Every template with its parameters and their defaults."""
    from segql.starters.templates import list_templates

    rows = [
        (t.name, t.title, ", ".join(f"{p.name}={p.default}" for p in t.params))
        for t in list_templates()
    ]
    click.echo(render(["template", "title", "parameters"], rows, fmt))


@templates.command("show")
@click.argument("name")
@handle_errors
def templates_show(name: str) -> None:
    """A template's description, parameters and its text with the defaults."""
    from segql.starters.templates import show_template

    click.echo(show_template(name))


@templates.command("use")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter.")
@click.option("--stdout", is_flag=True, help="Print the segments instead of writing them.")
@click.pass_obj
@handle_errors
def templates_use(obj: Context, name: str, params: tuple[str, ...], stdout: bool) -> None:
    """Render a template and write it into the project's segments folder."""
    from segql.starters.templates import render_template

    values: dict[str, str] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise SegqlError(f"--param '{param}' is not KEY=VALUE")
        values[key.strip()] = value
    text = render_template(name, values)
    if stdout:
        click.echo(text, nl=False)
        return
    project = obj.project()
    folder = project.config.root / project.config.segments_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.segql"
    number = 2
    while target.exists():  # a second use of a template gets a file of its own
        target = folder / f"{name}_{number}.segql"
        number += 1
    new_names = {d.name for d in parse(text, str(target)).definitions}
    clash = sorted(new_names & {*project.definitions.segments, *project.definitions.traits})
    if clash:
        raise SegqlError(
            f"the template defines names the project already has: {', '.join(clash)}",
            help="pass --param name=... to rename it",
        )
    _write_atomically(target, text)
    click.echo(f"wrote {target}")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file.")
@click.option(
    "--actions",
    "actions_file",
    type=click.Path(dir_okay=False),
    help="Write the [[actions]] of automationConfig here (default: shown on stderr).",
)
@handle_errors
def import_(file: str, output: str | None, actions_file: str | None) -> None:
    """Turn rules in the JSON shapes of other segment engines into .segql text.

    FILE holds one case, a list of cases or {"cases": [...]}; each case has a "name" and
    one of these shapes:

    \b
    - rules: condition list of {condition: event|property|cohort, eventType,
      eventCount {gte, lte}, eventWindow '30d', property, operator, value, cohortId}
    - criteria object: subscription, features, events, person sections (+ mapping)
    - rule: tree of {type: condition|and|or|not, attribute, operator, value}
    - criteria list: {field, operator, value} items and combineWith AND|OR
    - events/properties (Go strategy): events [{event_name, operator:
      occurred|not_occurred|count_gt|count_lt, value, time_window}], properties
      [{property_name, operator, value}], operator AND|OR

    A case's automationConfig becomes [[actions]] for segql.toml; a warning names
    whatever has no equivalent.
    """
    import json

    from segql.starters.importer import import_actions, import_rules

    try:
        raw = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SegqlError(f"{file} is not valid JSON: {error}") from None
    text = import_rules(data)
    actions, warnings = import_actions(data)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if actions and actions_file:
        _write_atomically(Path(actions_file), actions)
        click.echo(f"wrote {actions_file} (add it to segql.toml)", err=True)
    elif actions:
        click.echo("# [[actions]] for segql.toml, from automationConfig:", err=True)
        click.echo(actions, err=True, nl=False)
    if output:
        _write_atomically(Path(output), text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


# --- people: overrides, erasure, retention ---------------------------------------------


class _WriteSession:
    """A read-write session with segql's tables in place, for the commands that change them."""

    def __init__(self, obj: Context):
        from segql.engines import connect
        from segql.runs.store import Store

        self.project = obj.project()
        self.store = Store(self.project.config.warehouse.schema)
        self.warehouse = connect(self.project.config)
        try:
            self.store.ensure_tables(self.warehouse)
        except BaseException:
            self.warehouse.close()
            raise

    def __enter__(self) -> _WriteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.warehouse.close()

    def overrides(self) -> Any:
        from segql.runs.overrides import Overrides

        return Overrides(self.warehouse, self.store)

    def segment(self, name: str) -> str:
        """A defined segment's name, or ``*`` for every segment."""
        if name != "*":
            self.project.select([name])
        return name


def _override_command(kind: str) -> Callable[..., Any]:
    @click.argument("segment")
    @click.argument("people", nargs=-1, required=True)
    @click.option("--reason", required=True, help="Why (kept with the override).")
    @click.pass_obj
    @handle_errors
    def command(obj: Context, segment: str, people: tuple[str, ...], reason: str) -> None:
        with _WriteSession(obj) as session:
            count = session.overrides().add(session.segment(segment), people, kind, reason)
        where = "every segment" if segment == "*" else segment
        click.echo(
            f"{count} {kind}d from {where}" if kind == "exclude" else f"{count} included in {where}"
        )
        click.echo("the next run applies it", err=True)

    return command


main.command(
    "exclude",
    help="Keep people out of a segment (SEGMENT '*': out of every segment) from the next run.",
)(_override_command("exclude"))
main.command("include", help="Keep people in a segment from the next run, whatever the rules.")(
    _override_command("include")
)


@main.command("overrides")
@click.argument("segment", required=False)
@format_option
@click.pass_obj
@handle_errors
def overrides_(obj: Context, segment: str | None, fmt: Format) -> None:
    """Overrides in force (of one segment, with the '*' ones, or of all)."""
    from segql.runs.overrides import COLUMNS

    with _WriteSession(obj) as session:
        rows = session.overrides().list(session.segment(segment) if segment else None)
    click.echo(render(list(COLUMNS), rows, fmt))


@main.command("clear-override")
@click.argument("segment")
@click.argument("people", nargs=-1, required=True)
@click.pass_obj
@handle_errors
def clear_override(obj: Context, segment: str, people: tuple[str, ...]) -> None:
    """Remove overrides; the rules decide again from the next run."""
    with _WriteSession(obj) as session:
        count = session.overrides().clear(segment, people)
    click.echo(f"{count} overrides cleared")


@main.command()
@click.argument("person_id", metavar="ID")
@as_of_option
@format_option
@click.pass_obj
@handle_errors
def person(obj: Context, person_id: str, as_of: str | None, fmt: Format) -> None:
    """The segments a person is in (entered at, version), their history, their traits."""
    from segql.reading.person import person_history, person_segments, person_traits

    with _ReadSession(obj) as session:
        store = session.reports.store
        segments = person_segments(session.warehouse, store, person_id)
        changes = person_history(session.warehouse, store, person_id)
        traits = person_traits(
            session.project, session.warehouse, person_id, parse_as_of_option(as_of)
        )
    if fmt == "json":
        import json

        def records(rows: Any) -> list[dict[str, Any]]:
            return [dict(zip(rows.columns, row, strict=True)) for row in rows.rows]

        document = {"person_id": person_id, "segments": records(segments),
                    "history": records(changes), "traits": dict(traits.rows)}  # fmt: skip
        click.echo(json.dumps(document, default=str, indent=2))
        return
    click.echo(render(segments.columns, segments.rows, fmt))
    if fmt == "table":
        click.echo("\nhistory")
    click.echo(render(changes.columns, changes.rows, fmt))
    if fmt == "table":
        click.echo("\ntraits")
    click.echo(render(traits.columns, traits.rows, fmt))


@main.command(name="eval")
@click.option(
    "--person",
    "people",
    metavar="ID",
    multiple=True,
    required=True,
    help="A person to evaluate (repeat the option, or give several ids after it).",
)
@click.argument("more", nargs=-1, metavar="[ID]...")
@click.option("--segment", "segments", multiple=True, help="Only this segment (repeatable).")
@as_of_option
@format_option
@click.pass_obj
@handle_errors
def eval_people(
    obj: Context,
    people: tuple[str, ...],
    more: tuple[str, ...],
    segments: tuple[str, ...],
    as_of: str | None,
    fmt: Format,
) -> None:
    """Every segment's membership for these people at an as-of; nothing is written."""
    from segql.engines import connect
    from segql.reading.evaluate import evaluate_people

    project = obj.project()
    warehouse = connect(project.config, read_only=True)
    try:
        found = evaluate_people(
            project, warehouse, [*people, *more], parse_as_of_option(as_of), segments or None
        )
    finally:
        warehouse.close()
    names = project.select(segments or None)
    rows = [(person, name, name in found[person]) for person in found for name in names]
    click.echo(render(["person_id", "segment", "member"], rows, fmt))


@main.command()
@click.argument("segment")
@click.option(
    "--person", "person_id", metavar="ID", help="Show whether this person passes each clause."
)
@as_of_option
@format_option
@click.pass_obj
@handle_errors
def explain(
    obj: Context, segment: str, person_id: str | None, as_of: str | None, fmt: Format
) -> None:
    """Each clause's count alone and as a funnel in the written order; nothing is written."""
    from segql.engines import connect
    from segql.reading.explain import explain_segment
    from segql.timeutil import utc_now

    project = obj.project()
    warehouse = connect(project.config, read_only=True)
    try:
        at = parse_as_of_option(as_of) or utc_now()
        found = explain_segment(project, warehouse, segment, at, person_id)
    finally:
        warehouse.close()
    columns = ["clause", "alone", "cumulative"]
    columns += ["person", "value"] if person_id is not None else []
    rows = [
        (c.text, c.alone, c.cumulative)
        + (
            ("passes" if c.person_passes else "fails", c.person_value)
            if person_id is not None
            else ()
        )
        for c in found.clauses
    ]
    click.echo(render(columns, rows, fmt))
    for warning in found.warnings:
        click.echo(f"warning: {warning}", err=True)


@main.command()
@click.argument("people", nargs=-1, required=True)
@click.pass_obj
@handle_errors
def forget(obj: Context, people: tuple[str, ...]) -> None:
    """Remove people from every segql table, leaving a tombstone without their id."""
    from segql.runs.erasure import Erasure

    with _WriteSession(obj) as session:
        removed = Erasure(session.warehouse, session.store).forget(people)
    click.echo(f"forgot {len(removed)} people: {sum(removed.values())} rows removed")


@main.command()
@click.option(
    "--history-before",
    "before",
    required=True,
    metavar="DATE",
    help="Drop history rows older than this (open memberships keep their enter).",
)
@click.pass_obj
@handle_errors
def prune(obj: Context, before: str) -> None:
    """Drop old membership history, keeping the intervals that reach DATE whole."""
    from segql.runs.erasure import Erasure

    cut = parse_as_of_option(before)
    assert cut is not None
    with _WriteSession(obj) as session:
        count = Erasure(session.warehouse, session.store).prune(cut)
    click.echo(f"{count} history rows removed")


if __name__ == "__main__":  # pragma: no cover
    main()
