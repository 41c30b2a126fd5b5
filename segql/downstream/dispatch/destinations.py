"""Built-in destinations: Resend and Meta audiences, and a warehouse table.

Each takes the records of a batch, keeps the last change of each person (in commit
order: the state the person ends in), and adds (enter, member) or removes (exit) them
with the service's documented API:

- ``resend``: ``POST /audiences/{id}/contacts`` with ``email`` (and ``first_name``,
  ``last_name``), ``DELETE /audiences/{id}/contacts/{email}`` (404: already gone),
  ``GET /audiences/{id}/contacts`` to read the audience for ``--resync``. One contact a
  request; 429 answers are retried after ``Retry-After``.
- ``meta_custom_audience``: ``POST`` and ``DELETE /{audience_id}/users`` with
  ``payload = {"schema": [...], "data": [[...], ...]}``, identifiers normalised (trimmed,
  lowercased; phone digits only) and SHA-256 hashed, at most 10,000 rows a request.
  Graph API errors with a throttling code (4, 17, 32, 613, 80003) or a transient one
  (1, 2) are retried; other errors (code 100: invalid parameter, ...) are not.
- ``table``: rows in a warehouse table segql creates: the changes appended (by
  ``event_id``, so a batch sent twice is there once), or, mirrored, one row per member.

Secrets (the token) never leave the request: every message is redacted.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote

from sqlglot import exp

from segql.compile.compiler import table_ref
from segql.downstream.dispatch.actions import META, RESEND, Action
from segql.downstream.dispatch.payloads import Record, plain
from segql.downstream.dispatch.secrets import Secrets
from segql.downstream.dispatch.senders import (
    Failure,
    HttpClient,
    Outcome,
    Sender,
    Sleep,
    with_retries,
)
from segql.timeutil import format_timestamp, utc_now

META_MAX_ROWS = 10_000
META_SCHEMA = {
    "email": "EMAIL", "phone": "PHONE", "first_name": "FN", "last_name": "LN",
    "country": "COUNTRY", "external_id": "EXTERN_ID",
}  # fmt: skip
META_RETRYABLE_CODES = {1, 2, 4, 17, 32, 341, 613, 80003}
RESEND_DEFAULT_RATE = 2.0  # requests a second: Resend's default limit per team


def final_changes(records: Sequence[Record]) -> dict[str, Record]:
    """Each person's last record (records are in commit order)."""
    last: dict[str, Record] = {}
    for record in records:
        last.pop(record["person_id"], None)
        last[record["person_id"]] = record
    return last


def adds(record: Record) -> bool:
    return bool(record["change"] != "exit")


class AudienceDestination:
    """What Resend and Meta share: coalescing a batch, outcomes per change."""

    def __init__(self, action: Action, sleep: Sleep = time.sleep):
        assert action.service is not None
        service = action.service
        self.action = action
        self.secrets = Secrets()
        where = f"{action.where()}"
        self.token = self.secrets.expand(service.token, f"{where} token")
        self.base_url = self.secrets.expand(service.base_url, f"{where} base_url")
        self.audience_id = self.secrets.expand(service.audience_id, f"{where} audience_id")
        self.sleep = sleep
        self.http = HttpClient(action, self.secrets, service.timeout, self.rate(action))

    def rate(self, action: Action) -> float | None:
        return action.rate

    def close(self) -> None:
        self.http.close()

    def identity(self, record: Record) -> Any:
        """What the service knows a person by; None: the person cannot be sent."""
        raise NotImplementedError

    def apply(
        self, add: Sequence[Record], remove: Sequence[Record]
    ) -> dict[str, tuple[int, str | None]]:
        """Add and remove people: ``(attempts, error or None)`` by person id."""
        raise NotImplementedError

    def send_batch(self, records: Sequence[Record]) -> list[Outcome]:
        final = final_changes(records)
        sendable = {p: r for p, r in final.items() if self.identity(r) is not None}
        results = self.apply(
            [r for r in sendable.values() if adds(r)],
            [r for r in sendable.values() if not adds(r)],
        )
        outcomes = []
        for record in records:
            person = record["person_id"]
            if person not in sendable:
                outcomes.append(
                    Outcome(record["event_id"], True, 0, "skipped: no identifier", True)
                )
                continue
            attempts, error = results[person]
            outcomes.append(Outcome(record["event_id"], error is None, attempts, error))
        return outcomes

    def resync(self, members: Sequence[Record], gone: Sequence[Record]) -> tuple[int, int, int]:
        """Make the audience hold exactly ``members``: ``(added, removed, failed)``."""
        add = [m for m in members if self.identity(m) is not None]
        remove = [g for g in gone if self.identity(g) is not None]
        results = self.apply(add, remove)
        failed = sum(error is not None for _, error in results.values())
        return len(add), len(remove), failed


class ResendAudience(AudienceDestination):
    """A Resend audience's contacts, one request per contact."""

    def __init__(self, action: Action, sleep: Sleep = time.sleep):
        super().__init__(action, sleep)
        self.contacts = f"{self.base_url}/audiences/{quote(self.audience_id, safe='')}/contacts"
        self.headers = {"Authorization": f"Bearer {self.token}", "User-Agent": "segql-dispatch"}
        self.pool = ThreadPoolExecutor(max_workers=action.concurrency, thread_name_prefix="segql")

    def rate(self, action: Action) -> float | None:
        return action.rate or RESEND_DEFAULT_RATE

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        super().close()

    def identity(self, record: Record) -> Any:
        email = record["properties"].get("email")
        email = str(email).strip() if email is not None else ""
        return email or None

    def apply(
        self, add: Sequence[Record], remove: Sequence[Record]
    ) -> dict[str, tuple[int, str | None]]:
        work = [(r, True) for r in add] + [(r, False) for r in remove]
        results: dict[str, tuple[int, str | None]] = {}
        for (record, _), result in zip(
            work, self.pool.map(lambda w: self.one(*w), work), strict=True
        ):
            results[record["person_id"]] = result
        return results

    def one(self, record: Record, add: bool) -> tuple[int, str | None]:
        email = self.identity(record)
        if add:
            body = {"email": email, "unsubscribed": False}
            for key in ("first_name", "last_name"):
                value = record["properties"].get(key)
                if value is not None:
                    body[key] = str(plain(value))
            content = json.dumps(body).encode()
            headers = {**self.headers, "Content-Type": "application/json"}

            def attempt() -> Any:
                return self.http.request("POST", self.contacts, headers=headers, content=content)
        else:
            url = f"{self.contacts}/{quote(email, safe='@')}"

            def attempt() -> Any:
                try:
                    return self.http.request("DELETE", url, headers=self.headers)
                except Failure as failure:
                    if str(failure).startswith("HTTP 404"):
                        return None  # not in the audience: what removing wants
                    raise

        _, attempts, error = with_retries(self.action, attempt, self.secrets, self.sleep)
        return attempts, error

    def held(self) -> set[str]:
        """The emails the audience holds now, every page of them."""
        emails: set[str] = set()
        after: str | None = None
        while True:
            url = (
                self.contacts + "?limit=100" + (f"&after={quote(after, safe='')}" if after else "")
            )
            response, _, error = with_retries(
                self.action, partial(self.http.request, "GET", url, headers=self.headers),
                self.secrets, self.sleep,
            )  # fmt: skip
            if error is not None:
                from segql.errors import SegqlError

                raise SegqlError(f"{self.action.name}: cannot read the Resend audience: {error}")
            page = response.json()
            data = page.get("data") or []
            emails.update(str(c["email"]) for c in data if c.get("email"))
            if not page.get("has_more") or not data:
                return emails
            after = str(data[-1].get("id"))

    def resync(self, members: Sequence[Record], gone: Sequence[Record]) -> tuple[int, int, int]:
        """Read the audience; add the members it lacks, remove whoever it holds that is
        not a member (whether or not segql put them there)."""
        held = {e.lower(): e for e in self.held()}
        wanted = {self.identity(m).lower(): m for m in members if self.identity(m) is not None}
        add = [m for e, m in wanted.items() if e not in held]
        remove = [
            {"person_id": f"email:{e}", "change": "exit", "properties": {"email": original}}
            for e, original in held.items()
            if e not in wanted
        ]
        results = self.apply(add, remove)
        failed = sum(error is not None for _, error in results.values())
        return len(add), len(remove), failed


class MetaCustomAudience(AudienceDestination):
    """A Meta custom audience's users: hashed identifiers, 10,000 rows a request."""

    def __init__(self, action: Action, sleep: Sleep = time.sleep):
        super().__init__(action, sleep)
        self.url = f"{self.base_url}/{quote(self.audience_id, safe='')}/users"
        self.fields = tuple(action.properties)
        self.schema = [META_SCHEMA[f] for f in self.fields]
        self.headers = {"Authorization": f"Bearer {self.token}", "User-Agent": "segql-dispatch"}

    def identity(self, record: Record) -> Any:
        row = [meta_hash(f, record["properties"].get(f)) for f in self.fields]
        return row if any(v for v in row) else None

    def apply(
        self, add: Sequence[Record], remove: Sequence[Record]
    ) -> dict[str, tuple[int, str | None]]:
        results: dict[str, tuple[int, str | None]] = {}
        for method, people in (("POST", add), ("DELETE", remove)):
            for start in range(0, len(people), META_MAX_ROWS):
                chunk = people[start : start + META_MAX_ROWS]
                result = self.request(method, [self.identity(r) for r in chunk])
                for record in chunk:
                    results[record["person_id"]] = result
        return results

    def request(self, method: str, rows: list[Any]) -> tuple[int, str | None]:
        schema: Any = self.schema if len(self.schema) > 1 else self.schema[0]
        data = rows if len(self.schema) > 1 else [r[0] for r in rows]
        form = {"payload": json.dumps({"schema": schema, "data": data})}

        def attempt() -> Any:
            try:
                return self.http.request(method, self.url, headers=self.headers, data=form)
            except Failure as failure:
                raise meta_failure(failure) from None

        _, attempts, error = with_retries(self.action, attempt, self.secrets, self.sleep)
        return attempts, error


def meta_failure(failure: Failure) -> Failure:
    """A Graph API error as a ``Failure``: throttling and transient codes are retried."""
    text = str(failure)
    match = re.search(r'"code"\s*:\s*(\d+)', text)
    if match and int(match.group(1)) in META_RETRYABLE_CODES:
        return Failure(text.replace(" (not retried: the request itself was refused)", ""),
                       wait=failure.wait)  # fmt: skip
    return failure


def meta_hash(field: str, value: Any) -> str:
    """A value normalised as Meta's customer-file rules say, then SHA-256 in hex
    (``external_id`` is sent as it is, not hashed)."""
    if value is None:
        return ""
    text = str(plain(value)).strip()
    if field == "phone":
        text = re.sub(r"\D", "", text).lstrip("0")
    elif field == "country":
        text = text.lower()[:2]
    elif field != "external_id":
        text = text.lower()
    if not text:
        return ""
    if field == "external_id":
        return text
    return hashlib.sha256(text.encode()).hexdigest()


class TableDestination:
    """A warehouse table segql keeps: the changes appended, or the members mirrored."""

    APPEND = (("event_id", "VARCHAR"), ("segment", "VARCHAR"), ("person_id", "VARCHAR"),
              ("change", "VARCHAR"), ("as_of", "TIMESTAMP"), ("reason", "VARCHAR"),
              ("commit_seq", "BIGINT"), ("properties", "VARCHAR"))  # fmt: skip
    MIRROR = (("person_id", "VARCHAR"), ("entered_at", "TIMESTAMP"), ("properties", "VARCHAR"),
              ("updated_at", "TIMESTAMP"))  # fmt: skip

    def __init__(self, action: Action, warehouse: Any, sleep: Sleep = time.sleep):
        assert action.service is not None
        self.action = action
        self.warehouse = warehouse
        self.sleep = sleep
        self.table = table_ref(action.service.table)
        self.columns = self.MIRROR if action.mirror else self.APPEND
        self.created = False

    def close(self) -> None:
        pass

    def create(self) -> None:
        if self.created:
            return
        if self.table.args.get("db"):
            schema = exp.Table(this=self.table.args["db"].copy(), db=None)
            if self.table.args.get("catalog"):
                schema.set("db", self.table.args["catalog"].copy())
            self.warehouse.run(exp.Create(this=schema, kind="SCHEMA", exists=True))
        columns = [
            exp.ColumnDef(this=exp.to_identifier(n, quoted=True), kind=exp.DataType.build(t))
            for n, t in self.columns
        ]
        create = exp.Create(
            this=exp.Schema(this=self.table.copy(), expressions=columns), kind="TABLE", exists=True
        )
        self.warehouse.run(create)
        self.created = True

    def send_batch(self, records: Sequence[Record]) -> list[Outcome]:
        try:
            self.create()
            with self.warehouse.transaction():
                if self.action.mirror:
                    self.mirror(list(final_changes(records).values()))
                else:
                    self.append(records)
        except Exception as error:  # the warehouse refused: the batch is parked, not lost
            message = getattr(error, "message", None) or str(error)
            return [Outcome(r["event_id"], False, 1, message[:500]) for r in records]
        return [Outcome(r["event_id"], True, 1) for r in records]

    def append(self, records: Sequence[Record]) -> None:
        ids = [r["event_id"] for r in records]
        self.delete("event_id", ids)
        rows = [
            [r["event_id"], r["segment"], r["person_id"], r["change"], _time(r["as_of"]),
             r["reason"], r["commit_seq"], _json(r["properties"])]
            for r in records
        ]  # fmt: skip
        self.insert(rows)

    def mirror(self, records: Sequence[Record]) -> None:
        self.delete("person_id", [r["person_id"] for r in records])
        now = format_timestamp(utc_now())
        rows = [
            [r["person_id"], _time(r.get("entered_at") or r["as_of"]), _json(r["properties"]), now]
            for r in records
            if adds(r)
        ]
        self.insert(rows)

    def resync(self, members: Sequence[Record], gone: Sequence[Record]) -> tuple[int, int, int]:
        """Replace every row with the current members."""
        self.create()
        with self.warehouse.transaction():
            before = int(
                self.warehouse.run(exp.select(exp.Count(this=exp.Star())).from_(self.table.copy()))[
                    0
                ][0]
            )
            self.warehouse.run(exp.delete(self.table.copy()))
            for start in range(0, len(members), 1000):
                self.mirror(members[start : start + 1000])
        return len(members), before, 0

    def delete(self, column: str, values: Sequence[str]) -> None:
        for start in range(0, len(values), 1000):
            chunk = values[start : start + 1000]
            where = exp.In(
                this=exp.column(column, quoted=True),
                expressions=[exp.Literal.string(v) for v in chunk],
            )
            self.warehouse.run(exp.delete(self.table.copy(), where=where))

    def insert(self, rows: Sequence[Sequence[Any]]) -> None:
        types = [t for _, t in self.columns]
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            if not chunk:
                return
            values = exp.values(
                [tuple(_literal(v, t) for v, t in zip(row, types, strict=True)) for row in chunk]
            )
            target = exp.Schema(
                this=self.table.copy(),
                expressions=[exp.to_identifier(n, quoted=True) for n, _ in self.columns],
            )
            self.warehouse.run(
                exp.Insert(this=target, expression=exp.select(exp.Star()).from_(values.as_("v")))
            )


def _literal(value: Any, kind: str) -> exp.Expr:
    if value is None:
        return exp.cast(exp.Null(), kind)
    if kind == "BIGINT":
        return exp.Literal.number(int(value))
    return exp.cast(exp.Literal.string(str(value)), kind)


def _json(properties: Any) -> str:
    return json.dumps(properties, ensure_ascii=False, default=str)


def _time(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_timestamp(value)
    return str(value).removesuffix("Z")


def make_destination(action: Action, warehouse: Any, sleep: Sleep) -> Sender:
    """The sender for a built-in destination."""
    assert action.service is not None
    kind = action.service.kind
    if kind == RESEND:
        return ResendAudience(action, sleep)
    if kind == META:
        return MetaCustomAudience(action, sleep)
    return TableDestination(action, warehouse, sleep)
