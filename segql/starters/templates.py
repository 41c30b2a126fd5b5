"""Segment templates: ready-made ``.segql`` text for the segments most teams start with.

A template is two files in the templates folder: ``<name>.toml`` (title, description, typed
parameters with defaults) and ``<name>.segql.j2`` (the text, rendered with jinja2). Every
parameter is validated and turned into a segql fragment before rendering, so a template
never pastes user text into rules: event names go through ``printer.ref``, property names
through ``printer.name`` and strings through ``printer.string``. The rendered text is parsed
before it is returned, so a template that renders broken rules is caught at once.

Parameter types:

* ``int``: a whole number (``min``/``max`` optional);
* ``number``: any number (``min``/``max`` optional);
* ``event``: an event name, rendered as a name or a quoted string; ``any`` means every event;
* ``identifier``: a segment, trait or property name, rendered bare or in backticks;
* ``string``: a string value, rendered as a quoted segql string.

A template may also list ``ascending = ["a", "b", ...]``: parameters whose values must rise
strictly in that order (for example the day thresholds of lifecycle stages).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jinja2

from segql.errors import SegqlError, did_you_mean
from segql.language.parser import parse
from segql.language.printer import name, ref, string

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ParamType = Literal["int", "number", "event", "identifier", "string"]
PARAM_TYPES: tuple[str, ...] = ParamType.__args__  # type: ignore[attr-defined]
_TEMPLATE_SUFFIX = ".segql.j2"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INT = re.compile(r"[+-]?\d+\Z")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")


@dataclass(frozen=True)
class TemplateParam:
    """One parameter of a template: its type, default and limits."""

    name: str
    type: ParamType
    default: str
    description: str = ""
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class TemplateInfo:
    """What ``segql templates`` lists about one template."""

    name: str
    title: str
    description: str
    params: tuple[TemplateParam, ...]
    ascending: tuple[str, ...] = ()

    def param(self, param_name: str) -> TemplateParam:
        for param in self.params:
            if param.name == param_name:
                return param
        raise KeyError(param_name)


def template_dirs() -> list[Path]:
    """Where templates may live: inside the installed package, or the source tree."""
    package = Path(__file__).resolve().parents[1]
    return [package / "_data" / "templates", package.parent / "templates"]


def templates_dir() -> Path:
    """The first templates folder that holds templates."""
    for folder in template_dirs():
        if folder.is_dir() and any(folder.glob("*" + _TEMPLATE_SUFFIX)):
            return folder
    searched = ", ".join(str(folder) for folder in template_dirs())
    raise SegqlError("no segment templates found", help=f"looked in {searched}")


def list_templates() -> list[TemplateInfo]:
    """Every template, sorted by name."""
    return list(_load_templates().values())


def get_template(template_name: str) -> TemplateInfo:
    """One template by name; an unknown name is an error that suggests the closest one."""
    templates = _load_templates()
    if template_name in templates:
        return templates[template_name]
    suggestion = did_you_mean(template_name, templates)
    message = f"unknown template '{template_name}'"
    if suggestion:
        message += f": did you mean '{suggestion}'?"
    raise SegqlError(message, help="templates: " + ", ".join(templates))


def show_template(template_name: str) -> str:
    """A template's description, its parameters with defaults, and its text with defaults."""
    info = get_template(template_name)
    lines = [f"{info.name}: {info.title}", "", info.description.strip(), "", "parameters:"]
    lines += _param_table(info.params)
    if not info.params:
        lines.append("  (none)")
    lines += ["", "rendered with the defaults:", "", render_template(template_name, {})]
    return "\n".join(lines).rstrip("\n") + "\n"


def _param_table(params: tuple[TemplateParam, ...]) -> list[str]:
    """One aligned line per parameter: name, type, default and limits, description."""
    rows = [
        (p.name, p.type, f"default {p.default!r}{_describe_limits(p)}", p.description)
        for p in params
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append(("  " + "  ".join([*cells, row[3]])).rstrip())
    return lines


def render_template(template_name: str, params: Mapping[str, str]) -> str:
    """The ``.segql`` text of a template with the given parameters (defaults for the rest).

    Raises ``SegqlError`` naming the parameter when one is unknown or invalid.
    """
    info = get_template(template_name)
    values = validate_params(info, params)
    fragments = {key: _fragment(info.param(key), value) for key, value in values.items()}
    text = _jinja_template(template_name).render(**fragments, raw=values)
    text = text.strip() + "\n"
    parse(text, f"<template {template_name}>")
    return text


def validate_params(info: TemplateInfo, params: Mapping[str, str]) -> dict[str, Any]:
    """Parameters converted to their types, defaults filled in, limits checked."""
    known = {p.name for p in info.params}
    for key in params:
        if key not in known:
            raise _unknown_param(info, key)
    values = {p.name: _convert(info.name, p, params.get(p.name, p.default)) for p in info.params}
    _check_ascending(info, values)
    return values


def _unknown_param(info: TemplateInfo, key: str) -> SegqlError:
    names = [p.name for p in info.params]
    suggestion = did_you_mean(key, names)
    message = f"unknown parameter '{key}' for template '{info.name}'"
    if suggestion:
        message += f": did you mean '{suggestion}'?"
    return SegqlError(message, help="parameters: " + (", ".join(names) or "(none)"))


def _convert(template_name: str, param: TemplateParam, text: str) -> Any:
    """One parameter's text as a value of its type, or an error naming the parameter."""
    where = f"parameter '{param.name}' of template '{template_name}'"
    text = str(text)
    if _CONTROL.search(text):
        raise SegqlError(f"{where} must not contain control characters or newlines")
    if param.type == "int":
        value: Any = _parse_int(text.strip(), where)
    elif param.type == "number":
        value = _parse_number(text.strip(), where)
    elif not text.strip():
        raise SegqlError(f"{where} must not be empty")
    elif param.type in ("event", "identifier"):
        value = text.strip()
    else:
        value = text
    if param.type in ("int", "number"):
        _check_limits(param, value, where)
    return value


def _parse_int(text: str, where: str) -> int:
    if not _INT.match(text):
        raise SegqlError(f"{where} must be a whole number, got {text!r}")
    return int(text)


def _parse_number(text: str, where: str) -> int | float:
    if not _NUMBER.match(text):
        raise SegqlError(f"{where} must be a number, got {text!r}")
    value = float(text)
    if not math.isfinite(value):
        raise SegqlError(f"{where} must be a finite number, got {text!r}")
    return int(value) if value.is_integer() and "e" not in text.lower() else value


def _check_limits(param: TemplateParam, value: float, where: str) -> None:
    if param.min is not None and value < param.min:
        raise SegqlError(f"{where} must be at least {_plain(param.min)}, got {_plain(value)}")
    if param.max is not None and value > param.max:
        raise SegqlError(f"{where} must be at most {_plain(param.max)}, got {_plain(value)}")


def _check_ascending(info: TemplateInfo, values: Mapping[str, Any]) -> None:
    """Thresholds that must rise in order, such as the days of lifecycle stages."""
    for lower, higher in zip(info.ascending, info.ascending[1:], strict=False):
        if not values[lower] < values[higher]:
            raise SegqlError(
                f"parameter '{higher}' of template '{info.name}' must be greater than "
                f"'{lower}' ({_plain(values[lower])}), got {_plain(values[higher])}",
                help="in order: " + " < ".join(info.ascending),
            )


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _fragment(param: TemplateParam, value: Any) -> str:
    """A validated value as segql text, safe to place in a template."""
    if param.type in ("int", "number"):
        return repr(value)
    if param.type == "event":
        return ref(None if value == "any" else value)
    if param.type == "identifier":
        return name(value)
    return string(value)


def _describe_limits(param: TemplateParam) -> str:
    parts = []
    if param.min is not None:
        parts.append(f">= {_plain(param.min)}")
    if param.max is not None:
        parts.append(f"<= {_plain(param.max)}")
    return f" ({', '.join(parts)})" if parts else ""


def _double_quoted(value: Any) -> str:
    """A title or description as a double-quoted segql label."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- loading -------------------------------------------------------------------------------


@cache
def _load_templates() -> dict[str, TemplateInfo]:
    folder = templates_dir()
    found: dict[str, TemplateInfo] = {}
    for path in sorted(folder.glob("*" + _TEMPLATE_SUFFIX)):
        template_name = path.name[: -len(_TEMPLATE_SUFFIX)]
        found[template_name] = _read_info(template_name, folder / f"{template_name}.toml")
    return found


def _read_info(template_name: str, path: Path) -> TemplateInfo:
    """A template's metadata file; a broken one is an error naming the file."""
    if not path.is_file():
        raise SegqlError(f"template '{template_name}' has no metadata file {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        params = tuple(_read_param(item) for item in data.get("params", []))
        info = TemplateInfo(
            name=template_name,
            title=str(data["title"]),
            description=str(data["description"]),
            params=params,
            ascending=tuple(data.get("ascending", ())),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as error:
        raise SegqlError(f"template metadata {path} is malformed: {error}") from error
    for param in info.params:
        _convert(template_name, param, param.default)
    return info


def _read_param(item: Mapping[str, Any]) -> TemplateParam:
    if item["type"] not in PARAM_TYPES:
        raise ValueError(f"parameter {item['name']!r} has unknown type {item['type']!r}")
    return TemplateParam(
        name=str(item["name"]),
        type=item["type"],
        default=str(item["default"]),
        description=str(item.get("description", "")),
        min=item.get("min"),
        max=item.get("max"),
    )


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["label"] = _double_quoted
    return environment


def _jinja_template(template_name: str) -> jinja2.Template:
    return _environment().get_template(template_name + _TEMPLATE_SUFFIX)
