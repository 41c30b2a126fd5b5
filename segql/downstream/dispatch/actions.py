"""``[[actions]]`` of segql.toml, parsed once into typed ``Action`` values.

Every field is checked here, and an unknown one is an error that names the entry and
suggests the field meant; the rest of the dispatcher trusts an ``Action``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from segql.config import ProjectConfig
from segql.config_schema import ACTION_KEYS
from segql.errors import SegqlConfigError, did_you_mean

CURSOR_PREFIX = "dispatch:"
FORMATS = ("jsonl", "csv")
TRIGGERS = ("enter", "exit", "member")
MIRROR = "mirror"
RESEND, META, TABLE = "resend", "meta_custom_audience", "table"
DESTINATIONS = (RESEND, META, TABLE)
DEFAULT_BASE_URLS = {RESEND: "https://api.resend.com", META: "https://graph.facebook.com/v25.0"}
# The people fields each audience service takes, by the property name that holds them.
AUDIENCE_FIELDS = {
    RESEND: ("email", "first_name", "last_name"),
    META: ("email", "phone", "first_name", "last_name", "country", "external_id"),
}

Fail = Callable[..., SegqlConfigError]


@dataclass(frozen=True)
class Webhook:
    """An HTTP endpoint. ``url`` and header values may use ``${ENV_VAR}``."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0


@dataclass(frozen=True)
class FileTarget:
    """A file changes are appended to, inside the project folder unless
    ``outside_project`` says otherwise."""

    path: str
    format: str = "jsonl"
    outside_project: bool = False
    escape_formulas: bool = True


@dataclass(frozen=True)
class Service:
    """A built-in destination: an audience service, or a warehouse table."""

    kind: str  # one of DESTINATIONS
    audience_id: str = ""
    token: str = ""
    base_url: str = ""
    table: str = ""
    timeout: float = 30.0


@dataclass(frozen=True)
class Action:
    """One ``[[actions]]`` entry: which changes go where, and how hard to try."""

    index: int  # 1-based, as people count the entries
    name: str
    segment: str
    on: str  # enter, exit, member; "mirror" for mode = "mirror" (enters and exits)
    webhook: Webhook | None = None
    file: FileTarget | None = None
    properties: tuple[str, ...] = ()
    batch_size: int = 500
    concurrency: int = 8
    max_attempts: int = 6
    backoff: float = 0.5
    max_backoff: float = 30.0
    start: str = "history"
    service: Service | None = None
    batch: int | None = None  # changes per request; None: one change, not in an array
    body: str | None = None
    rate: float | None = None  # requests per second
    delay: float = 0.0  # seconds after the run's as_of before a change is sent
    enabled: bool = True

    @property
    def cursor_name(self) -> str:
        return CURSOR_PREFIX + self.name

    @property
    def kind(self) -> str:
        if self.service is not None:
            return self.service.kind
        return "webhook" if self.webhook is not None else "file"

    @property
    def target(self) -> str:
        if self.service is not None:
            return self.service.table or self.service.audience_id
        return self.webhook.url if self.webhook is not None else self.file.path  # type: ignore[union-attr]

    @property
    def mirror(self) -> bool:
        return self.on == MIRROR

    def where(self) -> str:
        return f"[[actions]] #{self.index}"


_ACTION_KEYS = ACTION_KEYS  # one set: segql.toml's check and this parser agree
_WEBHOOK_KEYS = {"url", "method", "headers", "timeout"}
_FILE_KEYS = {"path", "format", "outside_project", "escape_formulas"}
_SERVICE_KEYS = {
    RESEND: {"audience_id", "token", "base_url", "timeout"},
    META: {"audience_id", "token", "base_url", "timeout"},
    TABLE: {"table"},
}
_METHODS = ("POST", "PUT", "PATCH", "DELETE", "GET")
_UNITS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
    "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
    "days": 86400,
}  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")


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
    mode = raw.get("mode", "changes")
    if mode not in ("changes", MIRROR):
        raise fail(f'mode must be "mirror" (or left out), not {_show(mode)}')
    on = _parse_trigger(raw, mode, fail)
    service = _parse_service(raw, mode, fail)
    if service is None:
        if ("webhook" in raw) == ("file" in raw):
            raise fail(
                "give exactly one destination: webhook = { url = ... } or file = { path = ... }"
            )
    elif "webhook" in raw or "file" in raw:
        raise fail(f'destination = "{service.kind}" takes no webhook or file table')
    webhook = _parse_webhook(raw["webhook"], fail) if "webhook" in raw else None
    file = _parse_file(raw["file"], fail) if "file" in raw else None
    properties = raw.get("properties", [])
    if not isinstance(properties, list) or not all(isinstance(p, str) and p for p in properties):
        raise fail("properties must be a list of column names of the entity table")
    if service is not None and service.kind in AUDIENCE_FIELDS:
        _check_audience_properties(service.kind, properties, fail)
    target = (
        webhook.url if webhook else file.path if file else service.table or service.audience_id  # type: ignore[union-attr]
    )
    name = raw.get("name", f"{segment}:{on}:{target}")
    if not isinstance(name, str) or not name:
        raise fail("name must be a non-empty string")
    start = raw.get("start", "history")
    if start not in ("history", "now"):
        raise fail(
            f'start must be "history" or "now", not {_show(start)}',
            help="history: send every recorded change; now: only changes after the first dispatch",
        )
    body = raw.get("body")
    if body is not None:
        if webhook is None:
            raise fail("body is a template for a webhook's request: give webhook = { url = ... }")
        from segql.downstream.dispatch.payloads import compile_body

        compile_body(body, fail)
    batch = raw.get("batch")
    if batch is not None:
        batch = _number(raw, "batch", None, int, 1, 100_000, fail)
        if webhook is None:
            raise fail("batch is for webhooks (audience destinations batch to their own limits)")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail(f"enabled must be true or false, not {_show(enabled)}")
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
        service=service,
        batch=batch,
        body=body,
        rate=_parse_rate(raw.get("rate"), fail),
        delay=_parse_delay(raw.get("delay"), fail),
        enabled=enabled,
    )


def _parse_trigger(raw: dict[str, Any], mode: str, fail: Fail) -> str:
    on = raw.get("on")
    if mode == MIRROR:
        if on is not None:
            raise fail(
                'mode = "mirror" takes no on: enters add to the audience, exits remove',
                help='leave out on = ..., or leave out mode = "mirror" to send one kind of change',
            )
        if raw.get("destination") is None:
            raise fail(
                'mode = "mirror" needs destination = one of ' + ", ".join(DESTINATIONS),
                help="a webhook or file receives changes; give on = ... for those",
            )
        return MIRROR
    if on not in TRIGGERS:
        guess = did_you_mean(str(on), TRIGGERS) if isinstance(on, str) else None
        message = f'on must be "enter", "exit" or "member", not {_show(on)}'
        raise fail(message + (f": did you mean '{guess}'?" if guess else ""))
    return cast(str, on)  # one of TRIGGERS


def _parse_service(raw: dict[str, Any], mode: str, fail: Fail) -> Service | None:
    kind = raw.get("destination")
    service_keys = {"audience_id", "token", "base_url", "table", "timeout"}
    if kind is None:
        stray = sorted(service_keys & set(raw))
        if stray:
            raise fail(
                f"{stray[0]} is a field of the built-in destinations: give destination = ..."
            )
        return None
    if kind not in DESTINATIONS:
        guess = did_you_mean(str(kind), DESTINATIONS)
        raise fail(
            f"destination must be one of {', '.join(DESTINATIONS)}, not {_show(kind)}"
            + (f": did you mean '{guess}'?" if guess else ""),
        )
    allowed = _SERVICE_KEYS[kind]
    stray = sorted((service_keys - allowed) & set(raw))
    if stray:
        raise fail(
            f'{stray[0]} is not a field of destination = "{kind}" ({", ".join(sorted(allowed))})'
        )

    def text(key: str, default: str | None = None) -> str:
        value = raw.get(key, default)
        if not isinstance(value, str) or not value:
            raise fail(f'{key} must be a non-empty string (destination = "{kind}")')
        return value

    if kind == TABLE:
        return Service(kind, table=text("table"))
    base_url = text("base_url", DEFAULT_BASE_URLS[kind])
    if urlsplit(base_url).scheme not in ("http", "https") and not base_url.startswith("${"):
        raise fail(f"base_url '{base_url}' must start with http:// or https://")
    token = text("token")
    if "${" not in token:
        raise fail(
            "token must come from the environment, not be written in segql.toml",
            help=f'token = "${{{kind.upper()}_TOKEN}}"',
        )
    timeout = raw.get("timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise fail(f"timeout must be a positive number of seconds, not {_show(timeout)}")
    return Service(kind, text("audience_id"), token, base_url.rstrip("/"), timeout=float(timeout))


def _check_audience_properties(kind: str, properties: list[str], fail: Fail) -> None:
    fields = AUDIENCE_FIELDS[kind]
    for name in properties:
        if name not in fields:
            guess = did_you_mean(name, fields)
            raise fail(
                f"properties: '{name}' is not a field {kind} takes"
                + (f": did you mean '{guess}'?" if guess else ""),
                help=f"{kind} takes: {', '.join(fields)} (name entity columns or traits so)",
            )
    if kind == RESEND and "email" not in properties:
        raise fail('destination = "resend" needs properties = ["email", ...]')
    if kind == META and not properties:
        raise fail('destination = "meta_custom_audience" needs properties = ["email", ...]')


def _parse_webhook(raw: Any, fail: Fail) -> Webhook:
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


def _parse_file(raw: Any, fail: Fail) -> FileTarget:
    if not isinstance(raw, dict):
        raise fail('file must be a table: file = { path = "exports/x.jsonl" }')
    unknown = sorted(set(raw) - _FILE_KEYS)
    if unknown:
        raise fail(f"file.{unknown[0]} is not a file field ({', '.join(sorted(_FILE_KEYS))})")
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise fail("file.path must be a non-empty string")
    default = "csv" if path.endswith(".csv") else "jsonl"
    fmt = raw.get("format", default)
    if fmt not in FORMATS:
        raise fail(f'file.format must be "jsonl" or "csv", not {_show(fmt)}')
    flags = {}
    for key in ("outside_project", "escape_formulas"):
        value = raw.get(key, key == "escape_formulas")
        if not isinstance(value, bool):
            raise fail(f"file.{key} must be true or false, not {_show(value)}")
        flags[key] = value
    return FileTarget(path, fmt, **flags)


def _parse_delay(value: Any, fail: Fail) -> float:
    if value is None:
        return 0.0
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or match.group(2) not in _UNITS:
        raise fail(
            f'delay must be a duration such as "5 minutes", not {_show(value)}',
            help="units: seconds, minutes, hours, days",
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def _parse_rate(value: Any, fail: Fail) -> float | None:
    if value is None:
        return None
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise fail(
            f'rate must be requests per unit of time such as "10/s", not {_show(value)}',
            help='"10/s", "600/min" or "1000/hour"',
        )
    return float(match.group(1)) / _UNITS[match.group(2)]


def _number(
    raw: dict[str, Any],
    key: str,
    default: Any,
    kind: type,
    low: float,
    high: float,
    fail: Fail,
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
