"""Entry points of ``segql dispatch`` and ``python -m segql.downstream.dispatch``: open the
project's warehouse, do one dispatcher's work, close it again."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from segql.downstream.dispatch.dispatcher import Dispatcher, Progress
from segql.errors import SegqlError
from segql.reading.reports import Rows


def _with_open_dispatcher(
    project_dir: str | Path,
    progress: Progress | None,
    wait: float,
    work: Callable[[Dispatcher], Rows],
) -> Rows:
    from segql.engines import connect
    from segql.project import load_project

    project = load_project(project_dir)
    warehouse = connect(project.config, wait=wait)
    try:
        return work(Dispatcher(project, warehouse, progress, wait=wait))
    finally:
        warehouse.close()


def run_dispatch(
    project_dir: str | Path,
    actions: Sequence[str] | None = None,
    progress: Progress | None = None,
    wait: float = 0.0,
) -> Rows:
    """``segql dispatch``: deliver new changes; a summary row per action."""
    return _with_open_dispatcher(project_dir, progress, wait, lambda d: d.dispatch(actions))


def run_retry_failed(
    project_dir: str | Path,
    actions: Sequence[str] | None = None,
    progress: Progress | None = None,
    wait: float = 0.0,
) -> Rows:
    """``segql dispatch --retry-failed``: send parked changes again."""
    return _with_open_dispatcher(project_dir, progress, wait, lambda d: d.retry_failed(actions))


def run_resync(
    project_dir: str | Path, action: str, progress: Progress | None = None, wait: float = 0.0
) -> Rows:
    """``segql dispatch --resync ACTION``: make a destination hold exactly the segment."""
    return _with_open_dispatcher(project_dir, progress, wait, lambda d: d.resync(action))


def run_status(
    project_dir: str | Path, progress: Progress | None = None, limit: int | None = 50
) -> tuple[Rows, Rows]:
    """``segql dispatch --status``: a row per action, and the parked changes (at most
    ``limit``)."""
    from segql.engines import connect
    from segql.project import load_project

    project = load_project(project_dir)
    (progress or (lambda m: None))("reading deliveries")
    warehouse = connect(project.config, read_only=True)
    try:
        dispatcher = Dispatcher(project, warehouse, progress)
        return dispatcher.status(), dispatcher.failed(limit)
    finally:
        warehouse.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segql.downstream.dispatch --project DIR [--status | --retry-failed | ...]``."""
    from segql.output import render

    parser = argparse.ArgumentParser(
        prog="python -m segql.downstream.dispatch", description=__doc__
    )
    parser.add_argument("--project", default=".")
    parser.add_argument("--action", action="append", help="only this action (repeatable)")
    parser.add_argument("--status", action="store_true")
    parser.add_argument("--retry-failed", action="store_true")
    parser.add_argument("--resync", metavar="ACTION")
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.add_argument("--wait", type=float, default=0.0)
    args = parser.parse_args(argv)
    started = time.monotonic()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        if args.status:
            summary, failed = run_status(args.project, progress)
            print(render(summary.columns, summary.rows, "table"))
            if failed.rows:
                print()
                print(render(failed.columns, failed.rows, "table"))
            return 0
        if args.resync:
            result = run_resync(args.project, args.resync, progress, args.wait)
        else:
            run = run_retry_failed if args.retry_failed else run_dispatch
            result = run(args.project, args.action, progress, args.wait)
        print(render(result.columns, result.rows, "table"))
        return 0
    except SegqlError as error:
        print(error.render(), file=sys.stderr)
        return 1
