"""The ``segql`` command line.

Every command shares one error handler: a ``SegqlError`` is printed as one block on
standard error with exit status 1; anything else is an internal error, shown with its
traceback only under ``--debug``.
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from segql.dialect import available_dialects
from segql.errors import SegqlError
from segql.output import FORMATS, Format, render
from segql.parser import parse
from segql.printer import format_source
from segql.project import Project, load_project
from segql.sqltext import generate_sql
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
        debug = bool(click.get_current_context().find_object(Context).debug)
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
            error = SegqlError(
                "the rules nest too deeply to compile",
                help="split long chains (a + b + ... or traits on traits) into fewer steps",
            )
            click.echo(error.render(), err=True)
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
    from segql.demo import anchor_from, init_project

    show = progress_printer(quiet=False)
    counts = init_project(Path(folder), people, seed, anchor_from(anchor), show)
    sizes = ", ".join(f"{n:,} {table}" for table, n in counts.items())
    click.echo(f"created a segql project in {folder} with a demo warehouse ({sizes})")
    click.echo(f"next: segql --project {folder} run")


@main.command()
@click.pass_obj
@handle_errors
def check(obj: Context) -> None:
    """Validate segments against the warehouse schema, before anything runs."""
    from segql.jsoncheck import properties_warnings
    from segql.warehouse import connect

    project = obj.project()
    warehouse = connect(project.config, read_only=True)
    try:
        project.read_catalog(warehouse)
        project.check()
        unseen = unseen_event_names(project, warehouse)
        json_warnings = properties_warnings(project, warehouse)
    finally:
        warehouse.close()
    for warning in json_warnings:
        click.echo(f"warning: {warning}", err=True)
    for name in sorted(unseen):
        click.echo(f"warning: event '{name}' does not occur in the data (yet)", err=True)
    segments, traits = len(project.definitions.segments), len(project.definitions.traits)
    click.echo(f"ok: {segments} segments and {traits} traits check against the warehouse")


def unseen_event_names(project: Project, warehouse: Any) -> set[str]:
    """Event names the rules use that the events table has no row of."""
    from sqlglot import exp

    events = project.config.events
    names = project.event_names()
    if events is None or not names:
        return set()
    column = exp.column(events.event_name, quoted=True)
    query = (
        exp.select(column)
        .distinct()
        .from_(exp.to_table(events.table, quoted=True))
        .where(column.isin(*(exp.Literal.string(n) for n in sorted(names))))
    )
    seen = {row[0] for row in warehouse.query(generate_sql(query, warehouse.dialect.sqlglot))}
    return names - seen


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

    from segql.plan import describe_plan

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
    fmt: Format,
) -> None:
    """Evaluate segments, diff against current members, record the changes.

    Prints each segment's size, how many entered and exited, and the run's time.
    """
    from segql.runner import Runner
    from segql.warehouse import connect

    project = obj.project()
    show = progress_printer(quiet)
    show("opening the warehouse")
    warehouse = connect(project.config, wait=wait)
    try:
        result = Runner(project, warehouse, show).run(
            segments, parse_as_of_option(as_of), prune=prune, wait=wait
        )
    finally:
        warehouse.close()
    seconds = round(result.seconds, 2)
    rows = [(s.segment, s.members, s.entered, s.exited, seconds) for s in result.segments]
    click.echo(render(["segment", "members", "entered", "exited", "time"], rows, fmt))
    if fmt == "table":
        notes = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.data.items() if v)
        click.echo(
            f"\nrun {result.run_id[:12]} committed as #{result.commit_seq} at as-of "
            f"{result.as_of:%Y-%m-%d %H:%M:%S}: {result.changes} changes in {seconds} s "
            f"(all segments in one query)",
        )
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
    from segql.retire import retire_run
    from segql.warehouse import connect

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
        from segql.reports import Reports
        from segql.warehouse import connect

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


@main.command()
@click.argument("segment")
@click.option("--limit", type=int, default=None, help="At most this many members.")
@format_option
@click.pass_obj
@handle_errors
def members(obj: Context, segment: str, limit: int | None, fmt: Format) -> None:
    """The current members of a segment (as of the last run)."""
    with _ReadSession(obj) as session:
        session.project.select([segment])  # an unknown name is an error, with a suggestion
        rows = session.reports.members(segment, limit)
    click.echo(render(rows.columns, rows.rows, fmt))


@main.command()
@click.argument("segment")
@click.option("--person", metavar="ID", help="Only this person's changes.")
@format_option
@click.pass_obj
@handle_errors
def history(obj: Context, segment: str, person: str | None, fmt: Format) -> None:
    """Every enter and exit of a segment, in commit order."""
    with _ReadSession(obj) as session:
        rows = session.reports.history(segment, person)
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
    click.echo(render(rows.columns, rows.rows, fmt))


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
    """Enter and exit changes after a commit_seq, in commit order (the changes feed)."""
    from segql.consumers import commit_consumer, read_for_consumer
    from segql.reports import CHANGE_COLUMNS, Reports
    from segql.warehouse import connect

    if consumer is not None and since is not None:
        raise SegqlError("give --since or --consumer, not both")
    project = obj.project()
    schema = project.config.warehouse.schema
    warehouse = connect(project.config, read_only=consumer is None)
    try:
        reports = Reports(warehouse, schema)
        if consumer is None:
            rows = [
                tuple(getattr(change, c) for c in CHANGE_COLUMNS)
                for change in reports.changes(since or 0, limit)
            ]
            click.echo(render(CHANGE_COLUMNS, rows, fmt))
            return
        batch = read_for_consumer(warehouse, schema, consumer, limit)
        click.echo(render(batch.columns, batch.rows, fmt))
        commit_consumer(warehouse, schema, consumer, batch.next_cursor)
    finally:
        warehouse.close()


@main.command()
@click.argument("condition")
@as_of_option
@click.option("--sample", type=int, default=10, show_default=True, help="How many ids to show.")
@format_option
@click.pass_obj
@handle_errors
def preview(obj: Context, condition: str, as_of: str | None, sample: int, fmt: Format) -> None:
    """Count the people a condition selects now, with a sample; nothing is written."""
    from segql.preview import preview_condition
    from segql.warehouse import connect

    project = obj.project()
    warehouse = connect(project.config, read_only=True)
    try:
        count, ids = preview_condition(
            project, warehouse, condition, parse_as_of_option(as_of), sample
        )
    finally:
        warehouse.close()
    if fmt == "table":
        click.echo(f"{count} people match")
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
    from segql.dispatch import run_dispatch, run_resync, run_retry_failed, run_status

    if status + retry_failed + (resync is not None) > 1:
        raise SegqlError("give one of --status, --retry-failed and --resync")
    folder = obj.project_dir or "."
    show = progress_printer(quiet)
    if status:
        summary, failed = run_status(folder, show)
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
    from segql.report import write_report

    with _ReadSession(obj) as session:
        path = write_report(session.warehouse, session.project, days, out)
    click.echo(f"wrote {path}")


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
    from segql.dbt import generate_dbt

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
    from segql.templates import list_templates

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
    from segql.templates import show_template

    click.echo(show_template(name))


@templates.command("use")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter.")
@click.option("--stdout", is_flag=True, help="Print the segments instead of writing them.")
@click.pass_obj
@handle_errors
def templates_use(obj: Context, name: str, params: tuple[str, ...], stdout: bool) -> None:
    """Render a template and write it into the project's segments folder."""
    from segql.templates import render_template

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
@handle_errors
def import_(file: str, output: str | None) -> None:
    """Turn rules in the JSON shapes of other segment engines into .segql text."""
    import json

    from segql.importer import import_rules

    try:
        raw = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SegqlError(f"{file} is not valid JSON: {error}") from None
    text = import_rules(data)
    if output:
        _write_atomically(Path(output), text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
