"""Rule import: the JSON rule shapes of other segment engines, turned into ``.segql`` text.

``import_rules`` reads one case, a list of cases, or ``{"cases": [...]}`` (the form of
``import-examples.json``). A case has a ``name`` (its title; the segment name is its
snake_case) and one of these shapes:

* ``rules``: a condition list, all ANDed (``combineWith`` may say OR), each rule with
  ``condition`` ``event`` (``eventType``, ``eventCount`` bounds, ``eventWindow``),
  ``property`` (``property``, ``operator``, ``value``) or ``cohort`` (``cohortId``);
* ``criteria`` as an object: sections ``subscription``, ``features``, ``events`` and
  ``person``, with an optional ``mapping`` from section fields to columns and sources;
* ``rule``: a tree of ``type`` ``condition`` (``attribute``, ``operator``, ``value``),
  ``and``, ``or`` and ``not`` nodes;
* ``criteria`` as a list: ``field``, ``operator``, ``value`` items joined by ``combineWith``;
* ``events`` and ``properties`` lists (the Go strategy shape): ``events`` items with
  ``event_name``, ``operator`` ``occurred``, ``not_occurred``, ``count_gt``, ``count_lt``
  (also ``count_gte``, ``count_lte``, ``count_eq``), ``value`` and ``time_window``;
  ``properties`` items with ``property_name``, ``operator`` and ``value``; all joined by
  the case's ``operator`` ``AND`` (the default) or ``OR``.

A case's ``automationConfig`` becomes ``[[actions]]`` text for segql.toml
(``import_actions``); what has no ``[[actions]]`` equivalent is named in a warning.

Rules become AST nodes and the text comes from segql's printer, so every value is quoted
as segql quotes it. Anything that cannot be imported faithfully (an unknown shape, field or
operator) is a ``SegqlError`` naming the JSON path of the field, for example
``unsupported operator 'regex_like' in rules[2].operator``: a rule silently dropped would
make a segment with the wrong members.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from segql.errors import SegqlError
from segql.language import ast
from segql.language.lexer import COMPACT_UNITS, WORD_UNITS
from segql.language.printer import format_module

# Operator names as other engines spell them, normalized (lower case, "_" for spaces and "-").
_COMPARE_OPERATORS: dict[str, ast.CompareOp] = {
    **dict.fromkeys(("=", "==", "eq", "equals", "equal", "equal_to", "is"), "="),
    **dict.fromkeys(
        ("!=", "<>", "ne", "neq", "not_equals", "not_equal", "not_equal_to", "is_not"), "!="
    ),
    **dict.fromkeys(("does_not_equal", "doesnt_equal"), "!="),
    **dict.fromkeys((">", "gt", "greater_than", "more_than"), ">"),
    **dict.fromkeys((">=", "gte", "ge", "greater_than_or_equal", "greater_or_equal"), ">="),
    **dict.fromkeys(("greater_than_or_equals", "at_least", "min"), ">="),
    **dict.fromkeys(("<", "lt", "less_than", "fewer_than"), "<"),
    **dict.fromkeys(("<=", "lte", "le", "less_than_or_equal", "less_or_equal"), "<="),
    **dict.fromkeys(("less_than_or_equals", "at_most", "max"), "<="),
}
_TEXT_OPERATORS: dict[str, tuple[ast.TextOp, bool]] = {
    **dict.fromkeys(("contains", "includes"), ("contains", False)),
    **dict.fromkeys(("not_contains", "does_not_contain", "not_includes"), ("contains", True)),
    **dict.fromkeys(("starts_with", "begins_with", "startswith"), ("starts_with", False)),
    **dict.fromkeys(("not_starts_with", "does_not_start_with"), ("starts_with", True)),
    **dict.fromkeys(("ends_with", "endswith"), ("ends_with", False)),
    **dict.fromkeys(("not_ends_with", "does_not_end_with"), ("ends_with", True)),
    "matches": ("matches", False),
}
_LIST_OPERATORS: dict[str, bool] = {
    **dict.fromkeys(("in", "one_of", "is_one_of", "any_of", "is_any_of", "in_list"), False),
    **dict.fromkeys(("not_in", "none_of", "is_not_one_of", "not_one_of", "not_in_list"), True),
}
_BETWEEN_OPERATORS: dict[str, bool] = {
    **dict.fromkeys(("between", "in_range", "is_between"), False),
    **dict.fromkeys(("not_between", "not_in_range", "is_not_between"), True),
}
_SET_OPERATORS: dict[str, bool] = {
    **dict.fromkeys(("is_set", "exists", "is_not_null", "not_null", "has_value", "set"), False),
    **dict.fromkeys(("is_not_set", "not_exists", "does_not_exist", "is_null", "null"), True),
    **dict.fromkeys(("not_set", "is_unset", "unset", "has_no_value"), True),
}
_TIME_OPERATORS: dict[str, ast.TimeOp] = {
    **dict.fromkeys(("before", "is_before", "earlier_than"), "before"),
    **dict.fromkeys(("after", "is_after", "later_than", "since"), "after"),
    **dict.fromkeys(("within", "within_last", "in_last", "in_the_last"), "within"),
}
# Bounds on a count or a number: {"gte": 2, "lte": 50}, {"min": 1}, {"eq": 3}.
_BOUND_OPERATORS: dict[str, ast.CompareOp] = {
    **dict.fromkeys(("gte", "min", "at_least", ">="), ">="),
    **dict.fromkeys(("gt", "more_than", ">"), ">"),
    **dict.fromkeys(("lte", "max", "at_most", "<="), "<="),
    **dict.fromkeys(("lt", "fewer_than", "<"), "<"),
    **dict.fromkeys(("eq", "equals", "exactly", "="), "="),
}
# Ordering against a date means a time test (language.md section 3): later is "after".
_ORDER_AS_TIME: dict[str, ast.TimeOp] = {">": "after", ">=": "after", "<": "before", "<=": "before"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?Z?\Z")
_DURATION = re.compile(r"\s*(\d+)\s*([A-Za-z]+)\s*\Z")
_CASE_SHAPE_KEYS = ("rules", "rule", "criteria", "events", "properties")


def import_rules(data: Any) -> str:
    """The ``.segql`` text of one case, a list of cases, or ``{"cases": [...]}``."""
    definitions: list[ast.Definition] = []
    seen: dict[str, str] = {}
    for path, case in _cases(data):
        segment = import_case(case, path)
        if segment.name in seen:
            raise SegqlError(
                f"duplicate segment name '{segment.name}' from {seen[segment.name]}name "
                f"and {path}name",
                help="give the cases different names",
            )
        seen[segment.name] = path
        definitions.append(segment)
    return format_module(ast.Module(tuple(definitions)))


def _cases(data: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """Each case with the prefix of its JSON path ("", "[2].", "cases[2].")."""
    if isinstance(data, Mapping) and "cases" in data and not _is_case(data):
        items, prefix = data["cases"], "cases"
        if not isinstance(items, list):
            raise SegqlError("expected a list of cases in cases")
    elif isinstance(data, list):
        items, prefix = data, ""
    elif isinstance(data, Mapping):
        return [("", data)]
    else:
        raise SegqlError("expected a JSON object or a list of objects holding rules")
    if not items:
        raise SegqlError(f"no cases to import in {prefix or 'the file'}")
    cases = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise SegqlError(f"expected an object in {prefix}[{index}]")
        cases.append((f"{prefix}[{index}].", item))
    return cases


def _is_case(data: Mapping[str, Any]) -> bool:
    return any(key in data for key in _CASE_SHAPE_KEYS)


def import_case(case: Mapping[str, Any], path: str = "") -> ast.Segment:
    """One case as a segment; ``path`` is the JSON path prefix used in error messages."""
    title = _required(case, "name", path)
    if not isinstance(title, str) or not title.strip():
        raise SegqlError(f"expected a non-empty string in {path}name")
    description = case.get("description")
    if description is not None and not isinstance(description, str):
        raise SegqlError(f"expected a string in {path}description")
    where = _case_condition(_Case(case, path))
    return ast.Segment(
        segment_name(title, f"{path}name"), where, title=title, description=description
    )


def segment_name(title: str, path: str = "name") -> str:
    """snake_case of a title: ``"Power Users"`` is ``power_users``, ``"highLTV"`` ``high_ltv``."""
    text = re.sub(r"['\u2019]", "", title)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[\W_]+", "_", text).strip("_").lower()
    if not text:
        raise SegqlError(f"no letters or digits to name a segment in {path}")
    return text


@dataclass(frozen=True)
class _Case:
    """One case being imported: its JSON, its path prefix, and its name mapping."""

    data: Mapping[str, Any]
    path: str

    def mapping(self, section: str) -> Mapping[str, Any]:
        mapping = self.data.get("mapping") or {}
        if not isinstance(mapping, Mapping):
            raise SegqlError(f"expected an object in {self.path}mapping")
        found = mapping.get(section) or {}
        if not isinstance(found, Mapping):
            raise SegqlError(f"expected an object in {self.path}mapping.{section}")
        return found

    def column(self, section: str, field: str) -> str:
        """A field's column: the section's mapping, then ``mapping.properties``, then as is."""
        for mapping in (self.mapping(section), self.mapping("properties")):
            if field in mapping:
                return str(mapping[field])
        return field


def _case_condition(case: _Case) -> ast.Condition:
    data, path = case.data, case.path
    if "rules" in data:
        return _condition_list(case, _list_at(data["rules"], f"{path}rules"), f"{path}rules")
    if "rule" in data:
        return _rule_tree(case, data["rule"], f"{path}rule")
    if "criteria" in data:
        criteria = data["criteria"]
        if isinstance(criteria, Mapping):
            return _criteria_object(case, criteria, f"{path}criteria")
        return _criteria_list(case, _list_at(criteria, f"{path}criteria"), f"{path}criteria")
    if "events" in data or "properties" in data:
        return _strategy(case)
    raise SegqlError(
        f"unsupported rule shape in {path or 'the case'}: expected 'rules', 'rule', "
        "'criteria', or 'events' and 'properties'",
        help="`segql import --help` lists the shapes segql imports",
    )


# --- the Go strategy shape: events, properties, operator ------------------------------------

_EVENT_OPERATORS: dict[str, ast.CompareOp] = {
    "occurred": ">=",
    "not_occurred": "=",
    "count_gt": ">",
    "count_gte": ">=",
    "count_lt": "<",
    "count_lte": "<=",
    "count_eq": "=",
}


def _strategy(case: _Case) -> ast.Condition:
    data, path = case.data, case.path
    groups: list[list[ast.Condition]] = []
    for index, item in enumerate(_list_at(data.get("events", []), f"{path}events")):
        groups.append([_strategy_event(item, f"{path}events[{index}]")])
    for index, item in enumerate(_list_at(data.get("properties", []), f"{path}properties")):
        where = f"{path}properties[{index}]"
        item = _object_at(item, where)
        _only(item, where, {"property_name", "operator", "value"})
        name = _string_at(_required(item, "property_name", where), f"{where}.property_name")
        groups.append([_predicate(ast.Name(case.column("properties", name)), item, where)])
    if not groups:
        raise SegqlError(f"no events or properties in {path or 'the case'}")
    word = str(data.get("operator", "AND")).strip().lower()
    if word not in ("and", "or"):
        raise SegqlError(
            f"unsupported operator {data['operator']!r} in {path}operator", help="use AND or OR"
        )
    return _join(groups, word)


def _strategy_event(item: Any, path: str) -> ast.Condition:
    item = _object_at(item, path)
    _only(item, path, {"event_name", "operator", "value", "time_window"})
    event = _string_at(_required(item, "event_name", path), f"{path}.event_name")
    raw = item.get("operator", "occurred")
    operator = _normalize(raw)
    if operator not in _EVENT_OPERATORS:
        raise _unsupported_operator(
            raw, f"{path}.operator", "operators: " + ", ".join(_EVENT_OPERATORS)
        )
    window = _window(item.get("time_window") or None, f"{path}.time_window")
    count = ast.Aggregate("count", ast.EventSpec(event, window=window))
    if operator in ("occurred", "not_occurred"):
        bound: ast.Expr = ast.Number(1 if operator == "occurred" else 0)
    else:
        bound = _number_at(_required(item, "value", path), f"{path}.value")
    return ast.Compare(_EVENT_OPERATORS[operator], count, bound)


# --- automationConfig: [[actions]] text -----------------------------------------------------

_TRIGGERS = {
    **dict.fromkeys(("enter", "on_enter", "entered", "segment_entered", "join"), "enter"),
    **dict.fromkeys(("exit", "on_exit", "exited", "segment_exited", "leave"), "exit"),
}


def import_actions(data: Any) -> tuple[str, list[str]]:
    """``[[actions]]`` TOML for every case's ``automationConfig``, and warnings naming what
    could not be carried over (an action is only written when it keeps its meaning)."""
    actions: list[dict[str, Any]] = []
    warnings: list[str] = []
    for path, case in _cases(data):
        config = case.get("automationConfig")
        if config is None:
            continue
        where = f"{path}automationConfig"
        segment = segment_name(str(case.get("name", "")), f"{path}name")
        items = config if isinstance(config, list) else [config]
        for index, item in enumerate(items):
            at = f"{where}[{index}]" if isinstance(config, list) else where
            action, dropped = _action(segment, item, at)
            warnings.extend(dropped)
            if action is not None:
                actions.append(action)
    if not actions:
        return "", warnings
    return "\n".join(_action_toml(action) for action in actions), warnings


def _action_toml(action: Mapping[str, Any]) -> str:
    """One ``[[actions]]`` table. Its values are plain strings, and a JSON string is a valid
    TOML basic string, so no TOML writer (none is a dependency) is needed."""
    return (
        "[[actions]]\n"
        f"segment = {json.dumps(action['segment'])}\n"
        f"on = {json.dumps(action['on'])}\n"
        f"webhook = {{ url = {json.dumps(action['webhook']['url'])} }}\n"
    )


def _action(segment: str, item: Any, path: str) -> tuple[dict[str, Any] | None, list[str]]:
    if not isinstance(item, Mapping):
        return None, [f"{path}: expected an object; nothing imported"]
    fields = dict(item)
    dropped: list[str] = []
    if fields.pop("enabled", True) is False:
        return None, [f"{path}: disabled; not imported"]
    trigger = _TRIGGERS.get(_normalize(fields.pop("trigger", fields.pop("on", "enter"))))
    url = (
        fields.pop("webhook_url", None) or fields.pop("webhookUrl", None) or fields.pop("url", None)
    )
    webhook = fields.pop("webhook", None)
    if isinstance(webhook, Mapping):
        url = url or webhook.get("url")
    elif isinstance(webhook, str):
        url = url or webhook
    if str(fields.get("type", "webhook")).lower() == "webhook":
        fields.pop("type", None)
    if trigger is None:
        return None, [
            f"{path}.trigger: {item.get('trigger', item.get('on'))!r} is not enter or exit; "
            "not imported"
        ]
    if not isinstance(url, str) or not url:
        kind = item.get("type") or item.get("channel") or "this action"
        return None, [
            f"{path}: {kind} has no webhook URL; not imported (segql sends webhooks and files)"
        ]
    for key in fields:
        dropped.append(f"{path}.{key}: no [[actions]] equivalent; dropped")
    return {"segment": segment, "on": trigger, "webhook": {"url": url}}, dropped


# --- combining ------------------------------------------------------------------------------


def _join(groups: Sequence[list[ast.Condition]], combine: str) -> ast.Condition:
    """Conditions from several rules under AND or OR; one rule may give several (ANDed)."""
    if combine == "and":
        items = [item for group in groups for item in group]
        return items[0] if len(items) == 1 else ast.And(tuple(items))
    parts = [_all(group) for group in groups]
    return parts[0] if len(parts) == 1 else ast.Or(tuple(parts))


def _all(items: Sequence[ast.Condition]) -> ast.Condition:
    return items[0] if len(items) == 1 else ast.And(tuple(items))


def _combine_with(case: _Case) -> str:
    """``combineWith`` (or ``combinator``/``match``): AND by default."""
    for key in ("combineWith", "combinator", "match"):
        if key in case.data:
            value = case.data[key]
            word = str(value).strip().lower()
            if word in ("and", "all", "&&"):
                return "and"
            if word in ("or", "any", "||"):
                return "or"
            raise SegqlError(
                f"unsupported combination {value!r} in {case.path}{key}", help="use AND or OR"
            )
    return "and"


# --- condition lists ------------------------------------------------------------------------


def _condition_list(case: _Case, rules: list[Any], path: str) -> ast.Condition:
    if not rules:
        raise SegqlError(f"no rules in {path}")
    groups = [_list_rule(case, rule, f"{path}[{i}]") for i, rule in enumerate(rules)]
    return _join(groups, _combine_with(case))


def _list_rule(case: _Case, rule: Any, path: str) -> list[ast.Condition]:
    rule = _object_at(rule, path)
    kind = _required(rule, "condition", path)
    builders: dict[str, Callable[[_Case, Mapping[str, Any], str], list[ast.Condition]]] = {
        "event": _event_rule,
        "property": _property_rule,
        "cohort": _cohort_rule,
    }
    if kind not in builders:
        raise SegqlError(
            f"unsupported condition {kind!r} in {path}.condition",
            help="conditions: event, property, cohort",
        )
    return builders[kind](case, rule, path)


def _event_rule(case: _Case, rule: Mapping[str, Any], path: str) -> list[ast.Condition]:
    _only(rule, path, {"condition", "eventType", "eventCount", "eventWindow"})
    event = _string_at(_required(rule, "eventType", path), f"{path}.eventType")
    window = _window(rule.get("eventWindow"), f"{path}.eventWindow")
    count = ast.Aggregate("count", ast.EventSpec(event, window=window))
    return _bounds(count, rule.get("eventCount", {"gte": 1}), f"{path}.eventCount")


def _property_rule(case: _Case, rule: Mapping[str, Any], path: str) -> list[ast.Condition]:
    _only(rule, path, {"condition", "property", "operator", "value"})
    prop = _string_at(_required(rule, "property", path), f"{path}.property")
    target = ast.Name(case.column("properties", prop))
    return [_predicate(target, rule, path)]


def _cohort_rule(case: _Case, rule: Mapping[str, Any], path: str) -> list[ast.Condition]:
    _only(rule, path, {"condition", "cohortId", "operator", "negate"})
    cohort = _string_at(_required(rule, "cohortId", path), f"{path}.cohortId")
    member: ast.Condition = ast.InSegment(cohort)
    negated = rule.get("negate") is True
    if "operator" in rule:
        operator = _normalize(rule["operator"])
        if operator not in _LIST_OPERATORS:
            raise _unsupported_operator(rule["operator"], f"{path}.operator", "in, not_in")
        negated = negated != _LIST_OPERATORS[operator]
    return [ast.Not(member) if negated else member]


# --- criteria objects -----------------------------------------------------------------------


def _criteria_object(case: _Case, criteria: Mapping[str, Any], path: str) -> ast.Condition:
    sections: dict[str, Callable[[_Case, Any, str], list[ast.Condition]]] = {
        "subscription": _subscription_section,
        "features": _features_section,
        "events": _events_section,
        "person": _person_section,
    }
    groups = []
    for key, value in criteria.items():
        if key not in sections:
            raise SegqlError(
                f"unsupported criteria section '{key}' in {path}.{key}",
                help="sections: " + ", ".join(sections),
            )
        groups.append(sections[key](case, value, f"{path}.{key}"))
    if not groups:
        raise SegqlError(f"no criteria in {path}")
    return _join(groups, _combine_with(case))


def _subscription_section(case: _Case, section: Any, path: str) -> list[ast.Condition]:
    """``has <source> where (...)``: every field is a filter on one subscription row."""
    section = _object_at(section, path)
    source = str(case.mapping("subscription").get("source", "subscriptions"))
    filters: list[ast.Condition] = []
    for key, value in section.items():
        filters += _field_filter(case, "subscription", key, value, f"{path}.{key}")
    spec = ast.EventSpec(source, where=_all(filters) if filters else None)
    return [ast.Compare(">=", ast.Aggregate("count", spec), ast.Number(1))]


def _field_filter(
    case: _Case, section: str, key: str, value: Any, path: str
) -> list[ast.Condition]:
    """``mrrMin: 0`` is ``mrr >= 0``; a list is ``in``; bounds are ranges; else ``=``."""
    for suffix, op in (("Min", ">="), ("Max", "<=")):
        if key.endswith(suffix) and len(key) > len(suffix):
            column = case.column(section, key[: -len(suffix)])
            return [ast.Compare(op, ast.Name(column), _number_at(value, path))]  # type: ignore[arg-type]
    return _value_filter(ast.Name(case.column(section, key)), value, path)


def _value_filter(target: ast.Expr, value: Any, path: str) -> list[ast.Condition]:
    if isinstance(value, list):
        return [ast.InList(target, _values(value, path))]
    if isinstance(value, Mapping):
        return _bounds(target, value, path)
    if value is None:
        return [ast.IsSet(target, negated=True)]
    return [ast.Compare("=", target, _literal(value, path))]


def _features_section(case: _Case, section: Any, path: str) -> list[ast.Condition]:
    section = _object_at(section, path)
    items: list[ast.Condition] = []
    for key, value in section.items():
        items += _value_filter(ast.Name(case.column("features", key)), value, f"{path}.{key}")
    return items


def _events_section(case: _Case, section: Any, path: str) -> list[ast.Condition]:
    items: list[ast.Condition] = []
    for index, item in enumerate(_list_at(section, path)):
        item_path = f"{path}[{index}]"
        item = _object_at(item, item_path)
        _only(item, item_path, {"eventName", "count", "within"})
        event = _string_at(_required(item, "eventName", item_path), f"{item_path}.eventName")
        window = _window(item.get("within"), f"{item_path}.within")
        count = ast.Aggregate("count", ast.EventSpec(event, window=window))
        items += _bounds(count, item.get("count", {"min": 1}), f"{item_path}.count")
    return items


def _person_section(case: _Case, section: Any, path: str) -> list[ast.Condition]:
    """``hasEmail: true`` is ``email is set``; other fields filter the person's columns."""
    section = _object_at(section, path)
    items: list[ast.Condition] = []
    for key, value in section.items():
        item_path = f"{path}.{key}"
        has = re.fullmatch(r"has([A-Z0-9_].*)", key)
        if has is None:
            items += _value_filter(ast.Name(case.column("person", key)), value, item_path)
            continue
        if not isinstance(value, bool):
            raise SegqlError(f"expected true or false in {item_path}")
        field = has.group(1)[0].lower() + has.group(1)[1:]
        column = str(case.mapping("person").get(key) or case.column("person", field))
        items.append(ast.IsSet(ast.Name(column), negated=not value))
    return items


# --- rule trees and criteria lists ----------------------------------------------------------


def _rule_tree(case: _Case, node: Any, path: str) -> ast.Condition:
    node = _object_at(node, path)
    kind = _normalize(_required(node, "type", path))
    if kind == "condition":
        _only(node, path, {"type", "attribute", "operator", "value"})
        attribute = _string_at(_required(node, "attribute", path), f"{path}.attribute")
        return _predicate(ast.Name(case.column("properties", attribute)), node, path)
    if kind not in ("and", "or", "not"):
        raise SegqlError(
            f"unsupported rule type {node['type']!r} in {path}.type",
            help="types: condition, and, or, not",
        )
    _only(node, path, {"type", "conditions"})
    children = _list_at(_required(node, "conditions", path), f"{path}.conditions")
    if not children:
        raise SegqlError(f"no conditions in {path}.conditions")
    items = [_rule_tree(case, child, f"{path}.conditions[{i}]") for i, child in enumerate(children)]
    if kind == "not":
        return ast.Not(_all(items))
    if len(items) == 1:
        return items[0]
    return ast.And(tuple(items)) if kind == "and" else ast.Or(tuple(items))


def _criteria_list(case: _Case, criteria: list[Any], path: str) -> ast.Condition:
    groups: list[list[ast.Condition]] = []
    for index, item in enumerate(criteria):
        item_path = f"{path}[{index}]"
        item = _object_at(item, item_path)
        _only(item, item_path, {"field", "operator", "value"})
        field = _string_at(_required(item, "field", item_path), f"{item_path}.field")
        groups.append([_predicate(ast.Name(case.column("properties", field)), item, item_path)])
    if not groups:
        raise SegqlError(f"no criteria in {path}")
    return _join(groups, _combine_with(case))


# --- predicates -----------------------------------------------------------------------------


def _predicate(target: ast.Expr, rule: Mapping[str, Any], path: str) -> ast.Condition:
    """``target <operator> value`` from a rule with ``operator`` and ``value``."""
    raw = _required(rule, "operator", path)
    operator = _normalize(raw)
    value_path = f"{path}.value"
    if operator in _SET_OPERATORS:
        return ast.IsSet(target, negated=_SET_OPERATORS[operator])
    value = _required(rule, "value", path)
    if operator in _COMPARE_OPERATORS:
        return _compare(target, _COMPARE_OPERATORS[operator], value, value_path)
    if operator in _TEXT_OPERATORS:
        text_op, negated = _TEXT_OPERATORS[operator]
        test = ast.TextTest(text_op, target, ast.String(_string_at(value, value_path)))
        return ast.Not(test) if negated else test
    if operator in _LIST_OPERATORS:
        values = _values(_list_at(value, value_path), value_path)
        return ast.InList(target, values, negated=_LIST_OPERATORS[operator])
    if operator in _BETWEEN_OPERATORS:
        low, high = _range(value, value_path)
        return ast.Between(target, low, high, negated=_BETWEEN_OPERATORS[operator])
    if operator in _TIME_OPERATORS:
        return _time_test(target, _TIME_OPERATORS[operator], value, value_path)
    raise _unsupported_operator(raw, f"{path}.operator")


def _compare(target: ast.Expr, op: ast.CompareOp, value: Any, path: str) -> ast.Condition:
    if value is None and op in ("=", "!="):
        return ast.IsSet(target, negated=op == "=")
    if isinstance(value, str) and _DATE.match(value) and op in _ORDER_AS_TIME:
        return ast.TimeTest(_ORDER_AS_TIME[op], target, ast.String(_time_text(value)))
    return ast.Compare(op, target, _literal(value, path))


def _time_test(target: ast.Expr, op: ast.TimeOp, value: Any, path: str) -> ast.Condition:
    if op == "within":
        return ast.TimeTest("within", target, _duration(value, path))
    if not (isinstance(value, str) and _DATE.match(value)):
        raise SegqlError(f"expected a date such as '2026-01-01' in {path}, got {value!r}")
    return ast.TimeTest(op, target, ast.String(_time_text(value)))


def _time_text(value: str) -> str:
    """An ISO time as segql writes it: a space between date and time, UTC without ``Z``."""
    return value.removesuffix("Z").replace("T", " ")


def _bounds(target: ast.Expr, bounds: Any, path: str) -> list[ast.Condition]:
    """``{"gte": 2, "lte": 50}`` on a value; a bare number means at least that many."""
    if isinstance(bounds, (int, float)) and not isinstance(bounds, bool):
        return [ast.Compare(">=", target, _number_at(bounds, path))]
    bounds = _object_at(bounds, path)
    if not bounds:
        raise SegqlError(f"no bounds in {path}", help='for example {"gte": 1}')
    items: list[ast.Condition] = []
    for key, value in bounds.items():
        op = _BOUND_OPERATORS.get(_normalize(key))
        if op is None:
            raise SegqlError(
                f"unsupported bound '{key}' in {path}.{key}",
                help="bounds: gte, gt, lte, lt, eq (or min, max)",
            )
        items.append(ast.Compare(op, target, _number_at(value, f"{path}.{key}")))
    return items


def _range(value: Any, path: str) -> tuple[ast.Expr, ast.Expr]:
    """``[low, high]`` or ``{"min": low, "max": high}`` (also ``from``/``to``)."""
    if isinstance(value, Mapping):
        for low_key, high_key in (("min", "max"), ("from", "to"), ("gte", "lte"), ("low", "high")):
            if set(value) == {low_key, high_key}:
                value = [value[low_key], value[high_key]]
                break
    if not (isinstance(value, list) and len(value) == 2):
        raise SegqlError(f"expected [low, high] in {path}, got {value!r}")
    return _literal(value[0], f"{path}[0]"), _literal(value[1], f"{path}[1]")


def _window(value: Any, path: str) -> ast.Window | None:
    return None if value is None else ast.WindowWithin(_duration(value, path))


def _duration(value: Any, path: str) -> ast.Duration:
    """``'30d'``, ``'1y'``, ``'30 days'``, or a whole number of days."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return ast.Duration(value, "day")
    match = _DURATION.match(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in (COMPACT_UNITS.keys() | WORD_UNITS.keys()):
        help = "write '3min' or '3mo'" if unit == "m" else "for example '30d', '1y' or 30 (days)"
        raise SegqlError(f"unsupported duration {value!r} in {path}", help=help)
    amount = int(match.group(1))
    if amount <= 0:
        raise SegqlError(f"a duration must be positive in {path}, got {value!r}")
    return ast.Duration(amount, (COMPACT_UNITS.get(unit) or WORD_UNITS[unit]))  # type: ignore[arg-type]


# --- values and JSON helpers ----------------------------------------------------------------


def _literal(value: Any, path: str) -> ast.Expr:
    if isinstance(value, bool):
        return ast.Boolean(value)
    if isinstance(value, (int, float)):
        return ast.Number(value)
    if isinstance(value, str):
        return ast.String(value)
    if value is None:
        return ast.Null()
    raise SegqlError(f"expected a string, number or boolean in {path}, got {value!r}")


def _values(values: list[Any], path: str) -> tuple[ast.Expr, ...]:
    if not values:
        raise SegqlError(f"expected at least one value in {path}")
    return tuple(_literal(v, f"{path}[{i}]") for i, v in enumerate(values))


def _number_at(value: Any, path: str) -> ast.Number:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SegqlError(f"expected a number in {path}, got {value!r}")
    return ast.Number(value)


def _string_at(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise SegqlError(f"expected a non-empty string in {path}, got {value!r}")
    return value


def _object_at(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SegqlError(f"expected an object in {path}, got {value!r}")
    return value


def _list_at(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise SegqlError(f"expected a list in {path}, got {value!r}")
    return value


def _required(data: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in data:
        raise SegqlError(f"missing field '{key}' in {path.rstrip('.') or 'the case'}")
    return data[key]


def _only(data: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    """A field we do not understand could change the rule's meaning: refuse it."""
    for key in data:
        if key not in allowed:
            raise SegqlError(
                f"unsupported field '{key}' in {path}.{key}",
                help="fields here: " + ", ".join(sorted(allowed)),
            )


def _normalize(operator: Any) -> str:
    return re.sub(r"[\s-]+", "_", str(operator).strip().lower())


def _unsupported_operator(raw: Any, path: str, known: str | None = None) -> SegqlError:
    help = known or (
        "operators: equals, not_equals, gt, gte, lt, lte, contains, starts_with, ends_with, "
        "matches, in, not_in, between, is_set, is_not_set, before, after, within"
    )
    return SegqlError(f"unsupported operator '{raw}' in {path}", help=help)
