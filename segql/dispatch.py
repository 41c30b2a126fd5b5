"""``segql dispatch``: deliver history changes to the destinations ``[[actions]]`` name.

Each action maps a segment and ``on = "enter" | "exit"`` to a destination: a webhook (one
JSON request per change) or a file (JSON lines or CSV, appended). Delivery is at least
once, and ``event_id`` is every payload's idempotency key (in the body, and in the
``Idempotency-Key`` header of a webhook).

How a change is never lost, for each action:

- its cursor (``segql_cursors``, consumer ``dispatch:<action name>``) is a ``commit_seq``
  below which every change of the action was delivered or parked;
- changes are read after the cursor in commit order, in batches, leaving out those
  ``segql_deliveries`` already records for the action (a batch half done before a crash);
- a batch is sent (webhooks concurrently, each retried with capped exponential backoff and
  jitter; a file written with one ``write`` and ``fsync``), then one transaction records
  every change of it as ``delivered`` or ``failed`` (parked) in ``segql_deliveries`` and
  moves the cursor past the commits the batch finished.

A crash between sending and recording sends that batch again: receivers deduplicate by
``event_id``. ``retry_failed`` sends parked changes again.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import io
import json
import os
import random
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlglot import exp

from segql.compiler import table_ref
from segql.config import ProjectConfig, expand_env
from segql.consumers import (
    change_from_row,
    latest_commit_seq,
    read_cursor,
    require_tables,
    select_changes,
    write_cursor_statements,
)
from segql.errors import SegqlConfigError, SegqlError, did_you_mean
from segql.reports import CHANGE_COLUMNS, Change, Rows
from segql.store import DELIVERIES, HISTORY, VERSIONS, Store
from segql.timeutil import format_timestamp, utc_now
from segql.warehouse import Warehouse

Progress = Callable[[str], None]
DELIVERED = "delivered"
FAILED = "failed"
CURSOR_PREFIX = "dispatch:"
FORMATS = ("jsonl", "csv")
# Statuses that mean the receiver might succeed if asked again; other 4xx are final.
RETRYABLE_STATUS = {408, 425, 429}


# --- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """An HTTP endpoint. ``url`` and header values may use ``${ENV_VAR}``."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0


@dataclass(frozen=True)
class FileTarget:
    """A file changes are appended to, relative to the project folder."""

    path: str
    format: str = "jsonl"


@dataclass(frozen=True)
class Action:
    """One ``[[actions]]`` entry: which changes go where, and how hard to try."""

    index: int  # 1-based, as people count the entries
    name: str
    segment: str
    on: str
    webhook: Webhook | None = None
    file: FileTarget | None = None
    properties: tuple[str, ...] = ()
    batch_size: int = 500
    concurrency: int = 8
    max_attempts: int = 6
    backoff: float = 0.5
    max_backoff: float = 30.0
    start: str = "history"

    @property
    def cursor_name(self) -> str:
        return CURSOR_PREFIX + self.name

    @property
    def kind(self) -> str:
        return "webhook" if self.webhook is not None else "file"

    @property
    def target(self) -> str:
        return self.webhook.url if self.webhook is not None else self.file.path  # type: ignore[union-attr]

    def where(self) -> str:
        return f"[[actions]] #{self.index}"


_ACTION_KEYS = {
    "name", "segment", "on", "webhook", "file", "properties", "batch_size", "concurrency",
    "max_attempts", "backoff", "max_backoff", "start",
}  # fmt: skip
_WEBHOOK_KEYS = {"url", "method", "headers", "timeout"}
_FILE_KEYS = {"path", "format"}
_METHODS = ("POST", "PUT", "PATCH", "DELETE", "GET")


def parse_actions(config: ProjectConfig) -> list[Action]:
    """The ``[[actions]]`` of segql.toml, each field checked; errors name the entry."""
    raw = config.raw.get("actions", [])
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise SegqlConfigError(
            "actions in segql.toml must be an array of tables",
            help='write each action as [[actions]] with segment = "..." and on = "enter"',
        )
    actions = [_parse_action(i, entry) for i, entry in enumerate(raw, start=1)]
    seen: dict[str, int] = {}
    for action in actions:
        if action.name in seen:
            raise SegqlConfigError(
                f"{action.where()}: name '{action.name}' is already used by "
                f"[[actions]] #{seen[action.name]}",
                help="give each action its own name: it keys the action's cursor and deliveries",
            )
        seen[action.name] = action.index
    return actions


def _parse_action(index: int, raw: dict[str, Any]) -> Action:
    where = f"[[actions]] #{index}"

    def fail(message: str, help: str | None = None) -> SegqlConfigError:
        return SegqlConfigError(f"{where}: {message}", help=help)

    unknown = sorted(set(raw) - _ACTION_KEYS)
    if unknown:
        guess = did_you_mean(unknown[0], _ACTION_KEYS)
        raise fail(
            f"unknown field '{unknown[0]}'" + (f": did you mean '{guess}'?" if guess else ""),
            help="fields: " + ", ".join(sorted(_ACTION_KEYS)),
        )
    segment = raw.get("segment")
    if not isinstance(segment, str) or not segment:
        raise fail("segment must be the name of a segment", help='segment = "power_users"')
    on = raw.get("on")
    if on not in ("enter", "exit"):
        raise fail(f'on must be "enter" or "exit", not {_show(on)}')
    if ("webhook" in raw) == ("file" in raw):
        raise fail("give exactly one destination: webhook = { url = ... } or file = { path = ... }")
    webhook = _parse_webhook(raw["webhook"], fail) if "webhook" in raw else None
    file = _parse_file(raw["file"], fail) if "file" in raw else None
    properties = raw.get("properties", [])
    if not isinstance(properties, list) or not all(isinstance(p, str) and p for p in properties):
        raise fail("properties must be a list of column names of the entity table")
    target = webhook.url if webhook is not None else file.path  # type: ignore[union-attr]
    name = raw.get("name", f"{segment}:{on}:{target}")
    if not isinstance(name, str) or not name:
        raise fail("name must be a non-empty string")
    start = raw.get("start", "history")
    if start not in ("history", "now"):
        raise fail(
            f'start must be "history" or "now", not {_show(start)}',
            help="history: send every recorded change; now: only changes after the first dispatch",
        )
    return Action(
        index=index,
        name=name,
        segment=segment,
        on=on,
        webhook=webhook,
        file=file,
        properties=tuple(properties),
        batch_size=_number(raw, "batch_size", 500, int, 1, 100_000, fail),
        concurrency=_number(raw, "concurrency", 8, int, 1, 256, fail),
        max_attempts=_number(raw, "max_attempts", 6, int, 1, 100, fail),
        backoff=_number(raw, "backoff", 0.5, float, 0.0, 3600.0, fail),
        max_backoff=_number(raw, "max_backoff", 30.0, float, 0.0, 86_400.0, fail),
        start=start,
    )


def _parse_webhook(raw: Any, fail: Callable[..., SegqlConfigError]) -> Webhook:
    if not isinstance(raw, dict):
        raise fail('webhook must be a table: webhook = { url = "https://..." }')
    unknown = sorted(set(raw) - _WEBHOOK_KEYS)
    if unknown:
        raise fail(f"webhook.{unknown[0]} is not a webhook field (url, method, headers, timeout)")
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise fail("webhook.url must be a non-empty string")
    if urlsplit(url).scheme not in ("http", "https") and not url.startswith("${"):
        raise fail(f"webhook.url '{url}' must start with http:// or https://")
    method = raw.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise fail(f"webhook.method must be one of {', '.join(_METHODS)}, not {_show(method)}")
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise fail(
            "webhook.headers must be a table of strings",
            help='headers = { Authorization = "Bearer ${CRM_TOKEN}" }',
        )
    timeout = raw.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise fail(f"webhook.timeout must be a positive number of seconds, not {_show(timeout)}")
    return Webhook(url, method.upper(), dict(headers), float(timeout))


def _parse_file(raw: Any, fail: Callable[..., SegqlConfigError]) -> FileTarget:
    if not isinstance(raw, dict):
        raise fail('file must be a table: file = { path = "exports/x.jsonl" }')
    unknown = sorted(set(raw) - _FILE_KEYS)
    if unknown:
        raise fail(f"file.{unknown[0]} is not a file field (path, format)")
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise fail("file.path must be a non-empty string")
    default = "csv" if path.endswith(".csv") else "jsonl"
    fmt = raw.get("format", default)
    if fmt not in FORMATS:
        raise fail(f'file.format must be "jsonl" or "csv", not {_show(fmt)}')
    return FileTarget(path, fmt)


def _number(
    raw: dict[str, Any],
    key: str,
    default: Any,
    kind: type,
    low: float,
    high: float,
    fail: Callable[..., SegqlConfigError],
) -> Any:
    value = raw.get(key, default)
    ok = not isinstance(value, bool) and (
        isinstance(value, int) if kind is int else isinstance(value, (int, float))
    )
    if not ok or not low <= value <= high:
        what = "a whole number" if kind is int else "a number"
        raise fail(f"{key} must be {what} from {low:g} to {high:g}, not {_show(value)}")
    return kind(value)


def _show(value: Any) -> str:
    return "nothing" if value is None else json.dumps(value, default=str)


# --- payloads ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def payload(change: Change, properties: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of one change: what happened, to whom, and the chosen properties."""
    return {
        "event_id": change.event_id,
        "segment": change.segment,
        "person_id": change.person_id,
        "change": change.change,
        "as_of": _plain(change.as_of) + "Z" if change.as_of is not None else None,
        "reason": change.reason,
        "commit_seq": change.commit_seq,
        "properties": {k: _plain(v) for k, v in properties.items()},
    }


# --- destinations ------------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of one change: delivered, or parked after ``attempts`` tries."""

    event_id: str
    delivered: bool
    attempts: int
    error: str | None = None


class _Retry(Exception):
    def __init__(self, message: str, retryable: bool = True, wait: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.wait = wait


def backoff_delay(action: Action, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, capped,
    with jitter in [half, full] so that many failing requests do not retry in step."""
    ceiling = min(action.max_backoff, action.backoff * (2 ** (attempt - 1)))
    return ceiling * (rng or random).uniform(0.5, 1.0)


class WebhookSender:
    """Sends one JSON request per change, ``concurrency`` at a time, each retried.

    Every thread keeps its own connection (HTTP keep-alive) and drops it after an error.
    """

    def __init__(self, action: Action, sleep: Callable[[float], None] = time.sleep):
        assert action.webhook is not None
        hook = action.webhook
        where = f"{action.where()} webhook"
        self.action = action
        self.url = expand_env(hook.url, f"{where}.url")
        self.headers = {k: expand_env(v, f"{where}.headers.{k}") for k, v in hook.headers.items()}
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SegqlConfigError(
                f"{where}.url '{parts.scheme}://{parts.hostname}...' is not an "
                "http:// or https:// URL"
            )
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.sleep = sleep
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=action.concurrency, thread_name_prefix="segql")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def send_batch(self, bodies: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        """Send every ``(event_id, body)``; the outcomes in the same order."""
        return list(self.pool.map(lambda item: self.send(*item), bodies))

    def send(self, event_id: str, body: bytes) -> Outcome:
        """One change, tried up to ``max_attempts`` times with backoff between."""
        action = self.action
        error = ""
        for attempt in range(1, action.max_attempts + 1):
            try:
                self._request(event_id, body)
                return Outcome(event_id, True, attempt)
            except _Retry as failure:
                error = str(failure)
                if not failure.retryable:
                    return Outcome(event_id, False, attempt, error)
                if attempt < action.max_attempts:
                    delay = backoff_delay(action, attempt)
                    if failure.wait is not None:
                        delay = min(action.max_backoff, max(delay, failure.wait))
                    self.sleep(delay)
        return Outcome(event_id, False, action.max_attempts, error)

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            timeout = self.action.webhook.timeout  # type: ignore[union-attr]
            if self.scheme == "https":
                connection = http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
            else:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self.local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
        self.local.connection = None

    def _request(self, event_id: str, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": event_id,
            "X-Segql-Event-Id": event_id,
            "User-Agent": "segql-dispatch",
            **self.headers,
        }
        method = self.action.webhook.method  # type: ignore[union-attr]
        send_body = None if method == "GET" else body
        for reused in (True, False):
            connection = self._connection()
            fresh = connection.sock is None
            try:
                connection.request(method, self.path, body=send_body, headers=headers)
                response = connection.getresponse()
                response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop_connection()
                if reused and not fresh:
                    continue  # the server closed a kept-alive connection: once more, anew
                raise _Retry(f"connection lost: {e}") from None
            except TimeoutError:
                self._drop_connection()
                raise _Retry(f"no answer within {self.action.webhook.timeout:g} s") from None  # type: ignore[union-attr]
            except (OSError, http.client.HTTPException) as e:
                self._drop_connection()
                raise _Retry(f"{type(e).__name__}: {e}") from None
        if response.will_close:
            self._drop_connection()
        status = response.status
        if 200 <= status < 300:
            return
        message = f"HTTP {status} {response.reason}"
        if status >= 500 or status in RETRYABLE_STATUS:
            wait = response.getheader("Retry-After")
            seconds = float(wait) if wait and wait.strip().isdigit() else None
            raise _Retry(message, wait=seconds)
        raise _Retry(message + " (not retried: the request itself was refused)", retryable=False)


class FileWriter:
    """Appends changes to a file, one line each, a whole batch per ``write`` + ``fsync``.

    Before each write the file's end is checked: a last line without its newline (a write
    cut short by a crash or a full disk) is cut off, so readers never see a torn line; the
    changes in it were not recorded as delivered and are written again.
    """

    def __init__(self, action: Action, root: Path, sleep: Callable[[float], None] = time.sleep):
        assert action.file is not None
        self.action = action
        self.format = action.file.format
        path = Path(expand_env(action.file.path, f"{action.where()} file.path"))
        self.path = path if path.is_absolute() else root / path
        self.sleep = sleep
        self.columns = ["event_id", "segment", "person_id", "change", "as_of", "reason",
                        "commit_seq", *action.properties]  # fmt: skip

    def close(self) -> None:
        pass

    def encode(self, records: Sequence[dict[str, Any]], with_header: bool) -> bytes:
        if self.format == "jsonl":
            lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
            return "".join(line + "\n" for line in lines).encode()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if with_header:
            writer.writerow(self.columns)
        for record in records:
            values = {**record, **record["properties"]}
            # One change per line, always: a line break inside a value becomes a space.
            writer.writerow([_csv_cell(values.get(c)) for c in self.columns])
        return buffer.getvalue().encode()

    def send_batch(self, records: Sequence[dict[str, Any]]) -> list[Outcome]:
        """Append all records; every outcome is the same (one write for the batch)."""
        action = self.action
        error = ""
        for attempt in range(1, action.max_attempts + 1):
            try:
                self._append(records)
                return [Outcome(r["event_id"], True, attempt) for r in records]
            except OSError as e:
                error = f"cannot write {self.path}: {e}"
                if attempt < action.max_attempts:
                    self.sleep(backoff_delay(action, attempt))
        return [Outcome(r["event_id"], False, action.max_attempts, error) for r in records]

    def _append(self, records: Sequence[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _lock(fd)
            size = repair_tail(fd)
            data = self.encode(records, with_header=self.format == "csv" and size == 0)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock


def _csv_cell(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX: one dispatcher at a time anyway
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def repair_tail(fd: int) -> int:
    """Cut a trailing partial line off the file; its size afterwards."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    end = size
    while end > 0:
        start = max(0, end - 65_536)
        chunk = os.pread(fd, end - start, start)
        if end == size and chunk.endswith(b"\n"):
            return size
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            keep = start + cut + 1
            os.ftruncate(fd, keep)
            os.fsync(fd)
            return keep
        end = start
    os.ftruncate(fd, 0)
    return 0


# --- the dispatcher -------------------------------------------------------------------------


@dataclass
class _Tally:
    delivered: int = 0
    parked: int = 0
    sent: int = 0


class Dispatcher:
    """Runs the project's actions against one warehouse session."""

    def __init__(
        self,
        project: Any,
        warehouse: Warehouse,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.project = project
        self.config: ProjectConfig = project.config
        self.warehouse = warehouse
        self.store = Store(self.config.warehouse.schema)
        self.progress = progress or (lambda message: None)
        self.sleep = sleep
        self.actions = parse_actions(self.config)

    # -- choosing actions

    def select(self, names: Sequence[str] | None = None) -> list[Action]:
        """The named actions (all when none are named), checked against the project."""
        if not self.actions:
            raise SegqlConfigError(
                "segql.toml has no [[actions]] to dispatch",
                help='add one: [[actions]] segment = "..." on = "enter" webhook = { url = "..." }',
            )
        chosen = self.actions
        if names:
            by_name = {a.name: a for a in self.actions}
            for name in names:
                if name not in by_name:
                    guess = did_you_mean(name, by_name)
                    raise SegqlError(
                        f"no action named '{name}'"
                        + (f": did you mean '{guess}'?" if guess else ""),
                        help="actions: " + ", ".join(by_name),
                    )
            chosen = [by_name[n] for n in dict.fromkeys(names)]
        require_tables(self.warehouse, self.store.schema)
        known = set(self.project.segment_names) | self._recorded_segments()
        columns = None
        for action in chosen:
            if action.segment not in known:
                guess = did_you_mean(action.segment, known)
                raise SegqlConfigError(
                    f"{action.where()}: segment '{action.segment}' is not a segment of this project"
                    + (f": did you mean '{guess}'?" if guess else ""),
                )
            if action.properties:
                if columns is None:
                    found = self.warehouse.table_columns(self.config.entity.table) or []
                    columns = [c for c, _ in found]
                for name in action.properties:
                    if name not in columns:
                        guess = did_you_mean(name, columns)
                        raise SegqlConfigError(
                            f"{action.where()}: properties: '{name}' is not a column of "
                            f"{self.config.entity.table}"
                            + (f": did you mean '{guess}'?" if guess else ""),
                            help="columns: " + ", ".join(columns),
                        )
        return chosen

    def _recorded_segments(self) -> set[str]:
        select = (
            exp.select(exp.column("segment", quoted=True))
            .distinct()
            .from_(self.store.table(VERSIONS))
        )
        return {row[0] for row in self.warehouse.run(select)}

    # -- dispatching

    def dispatch(self, names: Sequence[str] | None = None) -> Rows:
        """Deliver every change after each action's cursor; one summary row per action."""
        actions = self.select(names)
        rows = []
        paused = set(self.project.paused_segments)
        with self._lock():
            for action in actions:
                if action.segment in paused:  # sends nothing; its cursor waits
                    self.progress(f"{action.name}: segment {action.segment} is paused")
                    continue
                started = time.monotonic()
                tally, cursor = self._dispatch_action(action)
                seconds = round(time.monotonic() - started, 2)
                rows.append((action.name, action.segment, action.on, action.kind,
                             tally.delivered, tally.parked, cursor, seconds))  # fmt: skip
        columns = ("action", "segment", "on", "destination", "delivered", "parked", "cursor",
                   "seconds")  # fmt: skip
        return Rows(columns, rows)

    def _dispatch_action(self, action: Action) -> tuple[_Tally, int]:
        upto = latest_commit_seq(self.warehouse, self.store)
        cursor = read_cursor(self.warehouse, self.store, action.cursor_name)
        if cursor is None:
            cursor = upto if action.start == "now" else 0
            self._record(action, [], cursor)
        pending = self._count_pending(action, cursor, upto)
        tally = _Tally()
        if pending == 0:
            if upto > cursor:
                self._record(action, [], upto)
            self.progress(f"{action.name}: nothing to send")
            return tally, max(cursor, upto)
        self.progress(f"{action.name}: {pending} changes to send ({action.kind} {action.target})")
        sender = self._sender(action)
        started = last_report = time.monotonic()
        after = (cursor, "")
        try:
            while True:
                rows = self.warehouse.run(
                    select_changes(
                        self.store,
                        after,
                        upto,
                        action.batch_size,
                        segment=action.segment,
                        change=action.on,
                        undelivered_to=action.name,
                    )
                )
                changes = [change_from_row(r) for r in rows]
                if not changes:
                    cursor = max(cursor, upto)
                    self._record(action, [], cursor)
                    break
                outcomes = self._send(action, sender, changes)
                _crash_point("after_send")
                done = len(changes) < action.batch_size
                # Every change of a commit before the batch's last commit is now recorded.
                new_cursor = upto if done else max(cursor, changes[-1].commit_seq - 1)
                self._record(action, outcomes, new_cursor)
                cursor = new_cursor
                tally.delivered += sum(o.delivered for o in outcomes)
                tally.parked += sum(not o.delivered for o in outcomes)
                tally.sent += len(outcomes)
                now = time.monotonic()
                if done or now - last_report >= 1.0:
                    last_report = now
                    rate = tally.sent / max(now - started, 1e-9)
                    self.progress(
                        f"{action.name}: {tally.sent}/{pending} ({tally.delivered} delivered, "
                        f"{tally.parked} parked) {rate:,.0f}/s"
                    )
                if done:
                    break
                after = (changes[-1].commit_seq, changes[-1].event_id)
        finally:
            sender.close()
        return tally, cursor

    def _sender(self, action: Action) -> WebhookSender | FileWriter:
        if action.webhook is not None:
            return WebhookSender(action, self.sleep)
        return FileWriter(action, self.config.root, self.sleep)

    def _send(
        self, action: Action, sender: WebhookSender | FileWriter, changes: Sequence[Change]
    ) -> list[Outcome]:
        properties = self._properties(action, {c.person_id for c in changes})
        records = [payload(c, properties.get(c.person_id, {})) for c in changes]
        if isinstance(sender, FileWriter):
            return sender.send_batch(records)
        bodies = [(r["event_id"], json.dumps(r, ensure_ascii=False).encode()) for r in records]
        return sender.send_batch(bodies)

    def _properties(self, action: Action, people: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The chosen entity columns of these people, in one query."""
        ids = sorted(people)
        if not action.properties or not ids:
            return {}
        entity = self.config.entity
        person = exp.cast(exp.column(entity.id, table="e", quoted=True), "VARCHAR")
        select = (
            exp.select(
                person,
                *(exp.column(p, table="e", quoted=True) for p in action.properties),
            )
            .from_(table_ref(entity.table, "e"))
            .where(
                exp.In(this=person.copy(), expressions=[exp.Literal.string(i) for i in ids]),
                copy=False,
            )
        )
        found: dict[str, dict[str, Any]] = {}
        for row in self.warehouse.run(select):
            found.setdefault(str(row[0]), dict(zip(action.properties, row[1:], strict=True)))
        return found

    def _record(
        self,
        action: Action,
        outcomes: Sequence[Outcome],
        cursor: int | None,
        previous_attempts: Mapping[str, int] | None = None,
    ) -> None:
        """In one transaction: each outcome in ``segql_deliveries``, and the cursor.

        New outcomes are inserted (the changes were picked because no row existed);
        outcomes of a retry (``previous_attempts`` given) replace their rows."""
        now = utc_now()
        name = exp.Literal.string(action.name)
        # Outcomes alike but for their event id go in one INSERT ... SELECT over a
        # one-column VALUES list: far cheaper to generate and to bind than full rows.
        groups: dict[tuple[bool, int, str | None], list[str]] = {}
        for o in outcomes:
            attempts = o.attempts + (previous_attempts or {}).get(o.event_id, 0)
            groups.setdefault((o.delivered, attempts, o.error), []).append(o.event_id)
        with self.warehouse.transaction():
            for (delivered, attempts, error), ids in groups.items():
                for chunk in _chunks(ids, 1000):
                    if previous_attempts is not None:
                        self.warehouse.run(self._delete_deliveries(action, chunk))
                    self._run_uncopied(
                        self._insert_deliveries(name, chunk, delivered, attempts, error, now)
                    )
            if cursor is not None:
                for statement in write_cursor_statements(self.store, action.cursor_name, cursor):
                    self.warehouse.run(statement)

    def _delete_deliveries(self, action: Action, ids: Sequence[str]) -> exp.Delete:
        where = exp.and_(
            exp.column("destination", quoted=True).eq(exp.Literal.string(action.name)),
            exp.In(
                this=exp.column("event_id", quoted=True),
                expressions=[exp.Literal.string(i) for i in ids],
            ),
            copy=False,
        )
        return exp.delete(self.store.table(DELIVERIES), where=where)

    def _insert_deliveries(
        self,
        name: exp.Literal,
        ids: Sequence[str],
        delivered: bool,
        attempts: int,
        error: str | None,
        now: datetime,
    ) -> exp.Insert:
        columns = ("destination", "event_id", "status", "attempts", "last_error",
                   "delivered_at")  # fmt: skip
        values = exp.Values(
            expressions=[exp.Tuple(expressions=[exp.Literal.string(i)]) for i in ids],
            alias=exp.TableAlias(
                this=exp.to_identifier("v"), columns=[exp.to_identifier("event_id", quoted=True)]
            ),
        )
        select = exp.select(
            name.copy(),
            exp.column("event_id", table="v", quoted=True),
            exp.Literal.string(DELIVERED if delivered else FAILED),
            exp.Literal.number(attempts),
            exp.cast(exp.Null() if error is None else exp.Literal.string(error[:1000]), "VARCHAR"),
            exp.cast(
                exp.Literal.string(format_timestamp(now)) if delivered else exp.Null(), "TIMESTAMP"
            ),
            copy=False,
        ).from_(values, copy=False)
        target = exp.Schema(
            this=self.store.table(DELIVERIES),
            expressions=[exp.to_identifier(c, quoted=True) for c in columns],
        )
        return exp.Insert(this=target, expression=select)

    def _run_uncopied(self, statement: exp.Expression) -> None:
        """Run a large statement built here without the defensive copy ``run`` makes."""
        self.warehouse.query(statement.sql(dialect=self.warehouse.dialect.sqlglot, copy=False))

    # -- parked changes

    def retry_failed(self, names: Sequence[str] | None = None) -> Rows:
        """Send the parked changes of each action again; one summary row per action."""
        actions = self.select(names)
        rows = []
        paused = set(self.project.paused_segments)
        with self._lock():
            for action in actions:
                if action.segment in paused:  # sends nothing; its cursor waits
                    self.progress(f"{action.name}: segment {action.segment} is paused")
                    continue
                started = time.monotonic()
                failed = self._failed_changes(action)
                tally = _Tally()
                if failed:
                    self.progress(f"{action.name}: retrying {len(failed)} parked changes")
                    sender = self._sender(action)
                    try:
                        for chunk in _chunks(failed, action.batch_size):
                            changes = [c for c, _ in chunk]
                            outcomes = self._send(action, sender, changes)
                            previous = {c.event_id: n for c, n in chunk}
                            cursor = read_cursor(self.warehouse, self.store, action.cursor_name)
                            self._record(action, outcomes, cursor, previous)
                            tally.delivered += sum(o.delivered for o in outcomes)
                            tally.parked += sum(not o.delivered for o in outcomes)
                            tally.sent += len(outcomes)
                            self.progress(
                                f"{action.name}: {tally.sent}/{len(failed)} retried "
                                f"({tally.delivered} delivered, {tally.parked} still failing)"
                            )
                    finally:
                        sender.close()
                seconds = round(time.monotonic() - started, 2)
                rows.append((action.name, len(failed), tally.delivered, tally.parked, seconds))
        return Rows(("action", "retried", "delivered", "still_failed", "seconds"), rows)

    def _failed_changes(self, action: Action) -> list[tuple[Change, int]]:
        h, d = "h", "d"
        select = (
            exp.select(
                *(exp.column(c, table=h, quoted=True) for c in CHANGE_COLUMNS),
                exp.column("attempts", table=d, quoted=True),
            )
            .from_(self.store.table(DELIVERIES, d))
            .join(
                self.store.table(HISTORY, h),
                on=exp.column("event_id", table=h, quoted=True).eq(
                    exp.column("event_id", table=d, quoted=True)
                ),
            )
            .where(
                exp.and_(
                    exp.column("destination", table=d, quoted=True).eq(
                        exp.Literal.string(action.name)
                    ),
                    exp.column("status", table=d, quoted=True).eq(exp.Literal.string(FAILED)),
                )
            )
            .order_by(
                exp.column("commit_seq", table=h, quoted=True),
                exp.column("event_id", table=h, quoted=True),
            )
        )
        return [(change_from_row(r[:-1]), int(r[-1] or 0)) for r in self.warehouse.run(select)]

    # -- status

    def status(self) -> Rows:
        """Per action: cursor, latest commit, changes still to send, delivered, parked."""
        actions = self.select()
        upto = latest_commit_seq(self.warehouse, self.store)
        rows = []
        for action in actions:
            stored = read_cursor(self.warehouse, self.store, action.cursor_name)
            cursor = stored if stored is not None else (upto if action.start == "now" else 0)
            counts = self._delivery_counts(action)
            rows.append(
                (action.name, action.segment, action.on, action.kind, action.target,
                 stored, upto, self._count_pending(action, cursor, upto),
                 counts.get(DELIVERED, 0), counts.get(FAILED, 0))
            )  # fmt: skip
        columns = ("action", "segment", "on", "destination", "target", "cursor", "latest",
                   "pending", "delivered", "failed")  # fmt: skip
        return Rows(columns, rows)

    def failed(self, limit: int | None = None) -> Rows:
        """The parked changes of every action, oldest first, with their last error."""
        rows = []
        for action in self.select():
            for change, attempts in self._failed_changes(action):
                error = self._last_error(action, change.event_id)
                rows.append((action.name, change.commit_seq, change.event_id, change.segment,
                             change.person_id, change.change, attempts, error))  # fmt: skip
        rows = rows[:limit] if limit is not None else rows
        columns = ("action", "commit_seq", "event_id", "segment", "person_id", "change",
                   "attempts", "last_error")  # fmt: skip
        return Rows(columns, rows)

    def _last_error(self, action: Action, event_id: str) -> str | None:
        select = (
            exp.select(exp.column("last_error", quoted=True))
            .from_(self.store.table(DELIVERIES))
            .where(
                exp.and_(
                    exp.column("destination", quoted=True).eq(exp.Literal.string(action.name)),
                    exp.column("event_id", quoted=True).eq(exp.Literal.string(event_id)),
                )
            )
        )
        rows = self.warehouse.run(select)
        return rows[0][0] if rows else None

    def _delivery_counts(self, action: Action) -> dict[str, int]:
        select = (
            exp.select(exp.column("status", quoted=True), exp.Count(this=exp.Star()))
            .from_(self.store.table(DELIVERIES))
            .where(exp.column("destination", quoted=True).eq(exp.Literal.string(action.name)))
            .group_by(exp.column("status", quoted=True))
        )
        return {row[0]: int(row[1]) for row in self.warehouse.run(select)}

    def _count_pending(self, action: Action, cursor: int, upto: int) -> int:
        inner = select_changes(
            self.store, (cursor, ""), upto, 1, segment=action.segment, change=action.on,
            undelivered_to=action.name,
        )  # fmt: skip
        inner.set("limit", None)
        inner.set("order", None)
        select = exp.select(exp.Count(this=exp.Star())).from_(inner.subquery("pending"))
        return int(self.warehouse.run(select)[0][0])

    @contextlib.contextmanager
    def _lock(self) -> Any:
        """One dispatcher per project schema. DuckDB's file lock gives that already;
        PostgreSQL takes an advisory lock, and a second dispatcher fails at once."""
        if self.warehouse.dialect.name != "postgres":
            yield
            return
        key = exp.Literal.number(zlib.crc32(f"segql-dispatch:{self.store.schema}".encode()))
        if not self.warehouse.run(exp.select(exp.func("pg_try_advisory_lock", key)))[0][0]:
            raise SegqlError("another segql dispatch is running for this project")
        try:
            yield
        finally:
            self.warehouse.run(exp.select(exp.func("pg_advisory_unlock", key.copy())))


_fault_counts: dict[str, int] = {}


def _crash_point(name: str) -> None:
    """Fault injection for the crash tests: ``SEGQL_DISPATCH_FAULT=after_send:3`` kills the
    process with SIGKILL after the third batch was sent and before it was recorded."""
    step, _, nth = os.environ.get("SEGQL_DISPATCH_FAULT", "").partition(":")
    if step != name:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- entry points for the command line ----------------------------------------------------


def _with_dispatcher(project_dir: str | Path, progress: Progress | None, wait: float = 0.0):
    from segql.project import load_project
    from segql.warehouse import connect

    project = load_project(project_dir)
    warehouse = connect(project.config, wait=wait)
    return Dispatcher(project, warehouse, progress), warehouse


def _with_open_dispatcher(
    project_dir: str | Path,
    progress: Progress | None,
    wait: float,
    work: Callable[[Dispatcher], Rows],
) -> Rows:
    """Open the project's warehouse, do one dispatcher's work, close it again."""
    dispatcher, warehouse = _with_dispatcher(project_dir, progress, wait)
    try:
        return work(dispatcher)
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


def run_status(
    project_dir: str | Path, progress: Progress | None = None, limit: int | None = 50
) -> tuple[Rows, Rows]:
    """``segql dispatch --status``: a row per action, and the parked changes (at most
    ``limit``)."""
    from segql.project import load_project
    from segql.warehouse import connect

    project = load_project(project_dir)
    (progress or (lambda m: None))("reading deliveries")
    warehouse = connect(project.config, read_only=True)
    try:
        dispatcher = Dispatcher(project, warehouse, progress)
        return dispatcher.status(), dispatcher.failed(limit)
    finally:
        warehouse.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segql.dispatch --project DIR [--status | --retry-failed]``."""
    from segql.output import render

    parser = argparse.ArgumentParser(prog="python -m segql.dispatch", description=__doc__)
    parser.add_argument("--project", default=".")
    parser.add_argument("--action", action="append", help="only this action (repeatable)")
    parser.add_argument("--status", action="store_true")
    parser.add_argument("--retry-failed", action="store_true")
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
        run = run_retry_failed if args.retry_failed else run_dispatch
        result = run(args.project, args.action, progress, args.wait)
        print(render(result.columns, result.rows, "table"))
        return 0
    except SegqlError as error:
        print(error.render(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
