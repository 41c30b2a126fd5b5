"""Rule import: every case of the spec's import-examples.json becomes its segql, the file
forms (one case, a list, ``{"cases": [...]}``) all import, operators map to the predicates
they name, values are quoted safely, and what cannot be imported is an error naming the
JSON field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from segql.errors import SegqlError
from segql.language import ast
from segql.language.parser import parse
from segql.starters.importer import import_rules, segment_name

EXAMPLES_PATH = Path("/work/shared/spec/import-examples.json")
EXAMPLES: dict[str, Any] = json.loads(EXAMPLES_PATH.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = EXAMPLES["cases"]


def where_of(case: dict[str, Any]) -> ast.Condition | None:
    """The imported segment's condition."""
    (segment,) = parse(import_rules(case)).definitions
    assert isinstance(segment, ast.Segment)
    return segment.where


def tree(operator: str, value: Any, attribute: str = "x") -> dict[str, Any]:
    """A one-condition rule tree case."""
    condition = {"type": "condition", "attribute": attribute, "operator": operator}
    if value is not ...:
        condition["value"] = value
    return {"name": "Case", "rule": condition}


# --- the spec's examples ----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_example_imports_to_its_segql(case: dict[str, Any]) -> None:
    assert parse(import_rules(case)).definitions == parse(case["segql"]).definitions


def test_the_examples_file_imports_whole() -> None:
    imported = parse(import_rules(EXAMPLES)).definitions
    expected = tuple(d for case in CASES for d in parse(case["segql"]).definitions)
    assert imported == expected


def test_a_list_of_cases_imports_like_the_cases_form() -> None:
    assert import_rules(CASES) == import_rules({"cases": CASES})


# --- names, values, operators -----------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Power Users", "power_users"),
        ("High-Value  Users!", "high_value_users"),
        ("highLTVUsers", "high_ltv_users"),
        ("Can't Lose Them", "cant_lose_them"),
        ("  Trial users (EU) ", "trial_users_eu"),
    ],
)
def test_segment_names_are_snake_case_of_the_name(title: str, name: str) -> None:
    assert segment_name(title) == name


def test_title_and_description_are_kept() -> None:
    case = {**tree("equals", "x"), "name": 'The "Best" Users', "description": "it's here"}
    (segment,) = parse(import_rules(case)).definitions
    assert isinstance(segment, ast.Segment)
    assert (segment.name, segment.title, segment.description) == (
        "the_best_users",
        'The "Best" Users',
        "it's here",
    )


def test_hostile_values_and_names_stay_values_and_names() -> None:
    value = "x' or 1 = 1 --"
    case = {
        "name": "Hostile",
        "rules": [
            {"condition": "property", "property": "where", "operator": "equals", "value": value},
            {"condition": "event", "eventType": "Order Completed') >= 0 or (x"},
        ],
    }
    assert where_of(case) == ast.And(
        (
            ast.Compare("=", ast.Name("where"), ast.String(value)),
            ast.Compare(
                ">=",
                ast.Aggregate("count", ast.EventSpec("Order Completed') >= 0 or (x")),
                ast.Number(1),
            ),
        )
    )


X = ast.Name("x")


@pytest.mark.parametrize(
    ("operator", "value", "condition"),
    [
        ("equals", "a", ast.Compare("=", X, ast.String("a"))),
        ("==", 3, ast.Compare("=", X, ast.Number(3))),
        ("not_equals", True, ast.Compare("!=", X, ast.Boolean(True))),
        ("Not Equals", "a", ast.Compare("!=", X, ast.String("a"))),
        ("gt", 2.5, ast.Compare(">", X, ast.Number(2.5))),
        ("greater_than_or_equal", -1, ast.Compare(">=", X, ast.Number(-1))),
        ("lt", 1, ast.Compare("<", X, ast.Number(1))),
        ("<=", 1, ast.Compare("<=", X, ast.Number(1))),
        ("contains", "%_", ast.TextTest("contains", X, ast.String("%_"))),
        ("does_not_contain", "a", ast.Not(ast.TextTest("contains", X, ast.String("a")))),
        ("starts_with", "a", ast.TextTest("starts_with", X, ast.String("a"))),
        ("ends-with", "a", ast.TextTest("ends_with", X, ast.String("a"))),
        ("matches", "^a", ast.TextTest("matches", X, ast.String("^a"))),
        ("in", ["a", 1], ast.InList(X, (ast.String("a"), ast.Number(1)))),
        ("not_in", ["a"], ast.InList(X, (ast.String("a"),), negated=True)),
        ("between", [1, 5], ast.Between(X, ast.Number(1), ast.Number(5))),
        ("between", {"min": 1, "max": 5}, ast.Between(X, ast.Number(1), ast.Number(5))),
        ("not_between", [1, 5], ast.Between(X, ast.Number(1), ast.Number(5), negated=True)),
        ("is_set", ..., ast.IsSet(X)),
        ("exists", ..., ast.IsSet(X)),
        ("is_not_set", ..., ast.IsSet(X, negated=True)),
        ("is_null", ..., ast.IsSet(X, negated=True)),
        ("equals", None, ast.IsSet(X, negated=True)),
        ("not_equals", None, ast.IsSet(X)),
        (">=", "2026-01-01", ast.TimeTest("after", X, ast.String("2026-01-01"))),
        ("<", "2026-01-01T10:00:00Z", ast.TimeTest("before", X, ast.String("2026-01-01 10:00:00"))),
        ("after", "2026-02-01", ast.TimeTest("after", X, ast.String("2026-02-01"))),
        ("within", "7d", ast.TimeTest("within", X, ast.Duration(7, "day"))),
        ("in_last", 30, ast.TimeTest("within", X, ast.Duration(30, "day"))),
    ],
)
def test_operators_map_to_their_predicates(
    operator: str, value: Any, condition: ast.Condition
) -> None:
    assert where_of(tree(operator, value)) == condition


@pytest.mark.parametrize(
    ("window", "duration"),
    [
        ("30d", ast.Duration(30, "day")),
        ("1y", ast.Duration(1, "year")),
        ("6mo", ast.Duration(6, "month")),
        ("15min", ast.Duration(15, "minute")),
        ("2 weeks", ast.Duration(2, "week")),
        (90, ast.Duration(90, "day")),
    ],
)
def test_event_windows(window: Any, duration: ast.Duration) -> None:
    case = {"name": "W", "rules": [{"condition": "event", "eventType": "e", "eventWindow": window}]}
    spec = ast.EventSpec("e", window=ast.WindowWithin(duration))
    assert where_of(case) == ast.Compare(">=", ast.Aggregate("count", spec), ast.Number(1))


def test_cohort_rules_can_be_negated_and_lists_combined_with_or() -> None:
    case = {
        "name": "Either",
        "combineWith": "OR",
        "rules": [
            {"condition": "cohort", "cohortId": "a", "operator": "not_in"},
            {"condition": "event", "eventType": "e", "eventCount": {"gte": 2, "lte": 5}},
        ],
    }
    count = ast.Aggregate("count", ast.EventSpec("e"))
    assert where_of(case) == ast.Or(
        (
            ast.Not(ast.InSegment("a")),
            ast.And(
                (ast.Compare(">=", count, ast.Number(2)), ast.Compare("<=", count, ast.Number(5)))
            ),
        )
    )


def test_criteria_object_without_mapping_keeps_names_as_written() -> None:
    case = {
        "name": "Plans",
        "criteria": {"subscription": {"planName": "pro"}, "person": {"country": ["US"]}},
    }
    spec = ast.EventSpec(
        "subscriptions", where=ast.Compare("=", ast.Name("planName"), ast.String("pro"))
    )
    assert where_of(case) == ast.And(
        (
            ast.Compare(">=", ast.Aggregate("count", spec), ast.Number(1)),
            ast.InList(ast.Name("country"), (ast.String("US"),)),
        )
    )


def test_rule_tree_not_node() -> None:
    case = {
        "name": "Not FR",
        "rule": {"type": "not", "conditions": [tree("equals", "FR", "country")["rule"]]},
    }
    assert where_of(case) == ast.Not(ast.Compare("=", ast.Name("country"), ast.String("FR")))


# --- errors naming the field ------------------------------------------------------------


def with_rule(rule: dict[str, Any]) -> dict[str, Any]:
    ok = {"condition": "property", "property": "a", "operator": "equals", "value": 1}
    return {"name": "Bad", "rules": [ok, ok, rule]}


def prop_rule(operator: str, value: Any) -> dict[str, Any]:
    return {"condition": "property", "property": "x", "operator": operator, "value": value}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            with_rule(prop_rule("regex_like", "a")),
            "unsupported operator 'regex_like' in rules[2].operator",
        ),
        (
            with_rule({"condition": "behaviour", "eventType": "e"}),
            "unsupported condition 'behaviour' in rules[2].condition",
        ),
        (
            with_rule({"condition": "event", "eventType": "e", "eventWindow": "3m"}),
            "unsupported duration '3m' in rules[2].eventWindow",
        ),
        (
            with_rule({"condition": "event", "eventType": "e", "eventCount": {"approx": 3}}),
            "unsupported bound 'approx' in rules[2].eventCount.approx",
        ),
        (
            with_rule({"condition": "event", "eventType": "e", "eventProperties": {}}),
            "unsupported field 'eventProperties' in rules[2].eventProperties",
        ),
        (
            with_rule(prop_rule("in", "a")),
            "expected a list in rules[2].value, got 'a'",
        ),
        (
            with_rule(prop_rule("between", [1])),
            "expected [low, high] in rules[2].value, got [1]",
        ),
        (
            with_rule({"condition": "property", "operator": "equals", "value": 1}),
            "missing field 'property' in rules[2]",
        ),
        (
            {"cases": [CASES[0], {**tree("gt", 1), "rule": {"type": "xor", "conditions": []}}]},
            "unsupported rule type 'xor' in cases[1].rule.type",
        ),
        (
            [{"name": "A", "criteria": {"billing": {}}}],
            "unsupported criteria section 'billing' in [0].criteria.billing",
        ),
        (
            {"name": "A", "criteria": [{"field": "x", "operator": "~", "value": 1}]},
            "unsupported operator '~' in criteria[0].operator",
        ),
        (
            {
                "name": "A",
                "criteria": [{"field": "x", "operator": "=", "value": 1}],
                "combineWith": "XOR",
            },
            "unsupported combination 'XOR' in combineWith",
        ),
        ({"name": "A", "filters": []}, "unsupported rule shape in the case"),
        ({"name": "A", "rules": []}, "no rules in rules"),
        ({"rules": []}, "missing field 'name' in the case"),
        ([CASES[0], CASES[0]], "duplicate segment name 'power_users' from [0].name and [1].name"),
    ],
)  # fmt: skip
def test_errors_name_the_field(data: Any, message: str) -> None:
    with pytest.raises(SegqlError) as caught:
        import_rules(data)
    assert caught.value.message.startswith(message)


# --- the Go strategy shape and automationConfig -------------------------------------------

GO_STRATEGY: dict[str, Any] = {
    "name": "Power Users",
    "operator": "AND",
    "events": [
        {"event_name": "video_rendered", "operator": "count_gt", "value": 9, "time_window": "30d"},
        {"event_name": "Order Completed", "operator": "occurred", "time_window": 7},
        {"event_name": "churned", "operator": "not_occurred"},
        {"event_name": "login", "operator": "count_lt", "value": 3, "time_window": "2w"},
    ],
    "properties": [{"property_name": "status", "operator": "equals", "value": "paid"}],
    "automationConfig": {
        "trigger": "on_enter",
        "webhook_url": 'https://hooks.example.com/pu?a="b"',
        "delay_minutes": 5,
    },
}


def test_the_go_strategy_shape_imports() -> None:
    expected = parse(
        'segment power_users title "Power Users" where count(video_rendered within 30 days) > 9'
        " and count('Order Completed' within 7 days) >= 1 and count(churned) = 0"
        " and count(login within 2 weeks) < 3 and status = 'paid'"
    ).definitions[0]
    assert isinstance(expected, ast.Segment)
    assert where_of(GO_STRATEGY) == expected.where


def test_the_go_strategy_operator_or_joins_every_item() -> None:
    case = {**GO_STRATEGY, "operator": "OR", "events": GO_STRATEGY["events"][:1]}
    expected = parse(
        "segment a where count(video_rendered within 30 days) > 9 or status = 'paid'"
    ).definitions[0]
    assert isinstance(expected, ast.Segment)
    assert where_of(case) == expected.where


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"operator": "XOR"}, "unsupported operator 'XOR' in operator"),
        (
            {"events": [{"event_name": "a", "operator": "count_between"}]},
            "unsupported operator 'count_between' in events[0].operator",
        ),
        ({"events": [{"event_name": "a", "operator": "count_gt"}]}, "missing field 'value'"),
        ({"events": [{"event_name": "a", "window": "3d"}]}, "unsupported field 'window'"),
        ({"events": [], "properties": []}, "no events or properties"),
    ],
)
def test_go_strategy_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SegqlError, match=message.replace("[", r"\[").replace("]", r"\]")):
        import_rules({**GO_STRATEGY, **change})


def test_automation_config_becomes_actions_and_warns_of_what_is_dropped() -> None:
    import tomllib

    from segql.starters.importer import import_actions

    text, warnings = import_actions(GO_STRATEGY)
    assert tomllib.loads(text) == {
        "actions": [
            {
                "segment": "power_users",
                "on": "enter",
                "webhook": {"url": 'https://hooks.example.com/pu?a="b"'},
            }
        ]
    }
    assert warnings == ["automationConfig.delay_minutes: no [[actions]] equivalent; dropped"]


def test_automation_config_without_a_webhook_is_not_imported_and_says_so() -> None:
    from segql.starters.importer import import_actions

    case = {**GO_STRATEGY, "automationConfig": {"trigger": "exit", "type": "email"}}
    text, warnings = import_actions(case)
    assert text == ""
    assert warnings == [
        "automationConfig: email has no webhook URL; not imported (segql sends webhooks and files)"
    ]


def test_import_help_lists_the_shapes() -> None:
    from click.testing import CliRunner

    from segql.cli import main

    out = CliRunner().invoke(main, ["import", "--help"]).stdout
    for shape in ("rules:", "criteria object", "rule: tree", "criteria list", "events/properties"):
        assert shape in out
    assert "occurred|not_occurred|count_gt|count_lt" in out
