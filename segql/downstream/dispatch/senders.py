"""Senders: they take the records of a batch and say what became of each.

``WebhookSender`` posts records (one per request, or ``batch`` per request as a JSON
array or through the action's ``body`` template) over one httpx client, ``concurrency``
requests at a time, each retried with capped exponential backoff and jitter, at least as
long as ``Retry-After`` asks (seconds or an HTTP date), at most ``rate`` requests a
second. ``FileWriter`` appends records to a file inside the project, a batch per
``write`` + ``fsync``. Every error message is redacted of the action's secrets.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from segql.downstream.dispatch.actions import Action
from segql.downstream.dispatch.payloads import (
    BodyError,
    Record,
    compile_body,
    csv_cell,
    json_body,
    render_body,
)
from segql.downstream.dispatch.secrets import Secrets
from segql.errors import SegqlConfigError

Sleep = Callable[[float], None]
# Statuses that mean the receiver might succeed if asked again; other 4xx are final.
RETRYABLE_STATUS = {408, 425, 429}
CSV_HEAD = ["event_id", "segment", "person_id", "change", "as_of", "reason", "commit_seq"]
# How every file segql writes begins.
SIGNATURES = {"jsonl": b'{"event_id":"', "csv": ",".join(CSV_HEAD).encode()}


@dataclass
class Outcome:
    """What became of one change: delivered, skipped (nothing to send it with), or
    parked after ``attempts`` tries."""

    event_id: str
    delivered: bool
    attempts: int
    error: str | None = None
    skipped: bool = False


class Sender(Protocol):
    def send_batch(self, records: Sequence[Record]) -> list[Outcome]: ...

    def close(self) -> None: ...


class Failure(Exception):
    """One attempt failed; ``retryable`` says whether another might succeed, ``wait``
    is the least time to wait first (from ``Retry-After``)."""

    def __init__(self, message: str, retryable: bool = True, wait: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.wait = wait


def backoff_delay(action: Action, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, capped,
    with jitter in [half, full] so that many failing requests do not retry in step."""
    ceiling: float = min(action.max_backoff, action.backoff * (2 ** (attempt - 1)))
    jitter: float = (rng or random).uniform(0.5, 1.0)
    return ceiling * jitter


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


class RateLimiter:
    """At most ``per_second`` calls to ``wait`` return per second, across threads."""

    def __init__(self, per_second: float | None, sleep: Sleep = time.sleep):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next = 0.0
        self.lock = threading.Lock()
        self.sleep = sleep

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next)
            self.next = slot + self.interval
        if slot > now:
            self.sleep(slot - now)


def with_retries(
    action: Action, attempt: Callable[[], Any], secrets: Secrets, sleep: Sleep
) -> tuple[Any, int, str | None]:
    """Call ``attempt`` until it succeeds, fails for good, or ``max_attempts`` are spent:
    ``(result or None, attempts made, last error or None)``."""
    error = ""
    for number in range(1, action.max_attempts + 1):
        try:
            return attempt(), number, None
        except Failure as failure:
            error = secrets.redact(str(failure))
            if not failure.retryable:
                return None, number, error
            if number < action.max_attempts:
                delay = backoff_delay(action, number)
                if failure.wait is not None:
                    delay = max(delay, min(failure.wait, max(action.max_backoff, 3600.0)))
                sleep(delay)
    return None, action.max_attempts, error


class HttpClient:
    """An httpx client for one action: kept-alive connections, a reconnect on a dropped
    one, HTTP failures turned into ``Failure``, every message redacted."""

    def __init__(self, action: Action, secrets: Secrets, timeout: float, rate: float | None):
        import httpx

        self.httpx = httpx
        self.secrets = secrets
        self.timeout = timeout
        limits = httpx.Limits(
            max_connections=action.concurrency, max_keepalive_connections=action.concurrency
        )
        # retries=1: one reconnect when a kept-alive connection was closed by the server.
        transport = httpx.HTTPTransport(retries=1, limits=limits)
        self.client = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)
        self.limiter = RateLimiter(rate)

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        data: dict[str, str] | None = None,
    ) -> Any:
        """One request; a 2xx response, or ``Failure`` saying whether to try again."""
        httpx = self.httpx
        self.limiter.wait()
        try:
            response = self.client.request(method, url, headers=headers, content=content, data=data)
        except httpx.TimeoutException:
            raise Failure(f"no answer within {self.timeout:g} s") from None
        except httpx.TransportError as error:
            raise Failure(self.secrets.redact(f"{type(error).__name__}: {error}")) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as error:
            # A header or URL the library refuses to send: the same every time.
            message = self.secrets.redact(f"{type(error).__name__}: {error}")
            raise Failure(f"request not sent: {message}", retryable=False) from None
        if 200 <= response.status_code < 300:
            return response
        message = f"HTTP {response.status_code} {response.reason_phrase}"
        detail = self.secrets.redact(response.text[:300].strip())
        if detail:
            message += f": {detail}"
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
            raise Failure(message, wait=retry_after(response.headers.get("Retry-After")))
        raise Failure(message + " (not retried: the request itself was refused)", retryable=False)


class WebhookSender:
    """Sends records to a webhook: one per request, or ``batch`` per request."""

    def __init__(self, action: Action, sleep: Sleep = time.sleep):
        assert action.webhook is not None
        hook = action.webhook
        where = f"{action.where()} webhook"
        self.action = action
        self.secrets = Secrets()
        self.url = self.secrets.expand(hook.url, f"{where}.url")
        self.headers = {
            k: self.secrets.expand(v, f"{where}.headers.{k}") for k, v in hook.headers.items()
        }
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SegqlConfigError(
                self.secrets.redact(
                    f"{where}.url '{parts.scheme}://{parts.hostname}...' is not an "
                    "http:// or https:// URL"
                )
            )
        for key, value in self.headers.items():
            if any((ord(c) < 32 and c != "\t") or c == "\x7f" for c in value):
                raise SegqlConfigError(
                    f"{where}.headers.{key} holds a line break or another control character "
                    "once its variables are read",
                    help="a header value is one line: check the environment variable it uses",
                )
        self.template = (
            compile_body(action.body, lambda m, help=None: SegqlConfigError(m, help=help))
            if action.body is not None
            else None
        )
        self.sleep = sleep
        self.http = HttpClient(action, self.secrets, hook.timeout, action.rate)
        self.pool = ThreadPoolExecutor(max_workers=action.concurrency, thread_name_prefix="segql")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.http.close()

    def send_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """Send every record; the outcomes in the same order."""
        size = self.action.batch or 1
        groups = [records[i : i + size] for i in range(0, len(records), size)]
        outcomes: list[Outcome] = []
        for group in self.pool.map(self.send_request, groups):
            outcomes.extend(group)
        return outcomes

    def send_request(self, records: Sequence[Record]) -> list[Outcome]:
        """One request for these records, tried up to ``max_attempts`` times."""
        ids = [r["event_id"] for r in records]
        try:
            body = (
                render_body(self.template, records)
                if self.template is not None
                else json_body(records, self.action.batch is not None)
            )
        except BodyError as error:
            message = self.secrets.redact(error.message)
            return [Outcome(i, False, 1, message) for i in ids]
        key = ids[0] if len(ids) == 1 else hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-Segql-Event-Id": ids[0] if len(ids) == 1 else f"{len(ids)} changes",
            "User-Agent": "segql-dispatch",
            **self.headers,
        }
        method = self.action.webhook.method  # type: ignore[union-attr]
        content = None if method == "GET" else body
        _, attempts, failure = with_retries(
            self.action,
            lambda: self.http.request(method, self.url, headers=headers, content=content),
            self.secrets,
            self.sleep,
        )
        return [Outcome(i, failure is None, attempts, failure) for i in ids]


class FileWriter:
    """Appends changes to a file, one line each, a whole batch per ``write`` + ``fsync``.

    The file must be inside the project folder (unless ``outside_project = true``), not
    a symbolic link, and either new, empty or one segql wrote (its first line is a segql
    change or segql's CSV header): segql never appends to, or repairs, a file of yours.
    Before each write a last line without its newline (a write cut short) is cut off;
    the changes in it were not recorded as delivered and are written again.
    """

    def __init__(self, action: Action, root: Path, sleep: Sleep = time.sleep):
        assert action.file is not None
        self.action = action
        self.target = action.file
        self.format = action.file.format
        self.secrets = Secrets()
        where = f"{action.where()} file.path"
        path = Path(self.secrets.expand(action.file.path, where))
        self.path = resolve_inside(path, root, action.file.outside_project, where)
        self.sleep = sleep
        self.columns = [*CSV_HEAD, *action.properties]

    def close(self) -> None:
        pass

    def encode(self, records: Sequence[Record], with_header: bool) -> bytes:
        if self.format == "jsonl":
            lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
            return "".join(line + "\n" for line in lines).encode()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if with_header:
            writer.writerow(self.columns)
        escape = self.target.escape_formulas
        for record in records:
            values = {**record, **record["properties"]}
            writer.writerow([csv_cell(values.get(c), escape) for c in self.columns])
        return buffer.getvalue().encode()

    def send_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """Append all records; every outcome is the same (one write for the batch)."""
        action = self.action
        error = ""
        for attempt in range(1, action.max_attempts + 1):
            try:
                self._append(records)
                return [Outcome(r["event_id"], True, attempt) for r in records]
            except NotSegqlFile as refused:
                error = str(refused)
                return [Outcome(r["event_id"], False, attempt, error) for r in records]
            except OSError as e:
                error = self.secrets.redact(f"cannot write {self.path}: {e.strerror or e}")
                if attempt < action.max_attempts:
                    self.sleep(backoff_delay(action, attempt))
        return [Outcome(r["event_id"], False, action.max_attempts, error) for r in records]

    def _append(self, records: Sequence[Record]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as error:
            if self.path.is_symlink():
                raise NotSegqlFile(
                    f"{self.path} is a symbolic link: segql does not follow it"
                ) from None
            raise error
        try:
            _lock(fd)
            self._check_ours(fd)
            size = repair_tail(fd)
            data = self.encode(records, with_header=self.format == "csv" and size == 0)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock

    def _check_ours(self, fd: int) -> None:
        head = os.pread(fd, 65_536, 0)
        first = head.split(b"\n", 1)[0]
        if not first or is_segql_line(first, self.format):
            return
        signature = SIGNATURES[self.format]
        if b"\n" not in head and (signature.startswith(first) or first.startswith(signature)):
            return  # segql's first write, cut short: repair_tail removes it
        raise NotSegqlFile(
            f"{self.path} was not written by segql (its first line is not a segql change): "
            "not appending to it; give the action a new file"
        )


class NotSegqlFile(OSError):
    """A file segql refuses to touch."""


def is_segql_line(line: bytes, fmt: str) -> bool:
    """Whether a file's first line is one segql writes: a change, or the CSV header."""
    if fmt == "csv":
        return line.decode(errors="replace").split(",")[: len(CSV_HEAD)] == CSV_HEAD
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and {"event_id", "segment", "change"} <= set(record)


def resolve_inside(path: Path, root: Path, outside: bool, where: str) -> Path:
    """The file a path names, refused if it leaves the project folder (``..``, an
    absolute path, a symbolic link on the way) unless ``outside`` allows it."""
    full = path if path.is_absolute() else root / path
    if full.is_symlink():
        raise SegqlConfigError(
            f"{where} '{path}' is a symbolic link: segql writes only to a file of its own",
            help="name the file itself, not a link to it",
        )
    if outside:
        return full
    real_root = root.resolve()
    real = full.resolve()  # follows every symbolic link on the way
    if real != real_root and real_root not in real.parents:
        raise SegqlConfigError(
            f"{where} '{path}' is outside the project folder",
            help="write inside the project, or add outside_project = true to the file table",
        )
    return real


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
