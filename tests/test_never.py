"""Clauses that can never hold by their shape (segql.compile.never), as ``segql explain`` warns."""

from __future__ import annotations

import pytest

from segql.compile.never import never_holds
from segql.language.parser import parse_condition

NEVER = [
    ("count(login within 7 days) > count(login within 30 days)",
     "count(login within 7 days) is never more than count(login within 30 days)"),
    ("count(login within 30 days) < count(login within 7 days)",
     "count(login within 7 days) is never more than count(login within 30 days)"),
    ("count(login within 7 days) > count(login)",
     "count(login within 7 days) is never more than count(login)"),
    ("count(login within 1 week) > count(login within 7 days)",
     "count(login within 1 week) is never more than count(login within 7 days)"),
    ("active_days(login within 2 days) > active_days(login within 1 month)",
     "active_days(login within 2 days) is never more than active_days(login within 1 month)"),
    ("count(login) < 0", "count(login) is never below 0"),
    ("0 > count(login)", "count(login) is never below 0"),
    ("count_distinct(purchase.sku) <= -1", "count_distinct(purchase.sku) is never below 0"),
    ("min(purchase.amount) > max(purchase.amount)",
     "min(purchase.amount) is never more than max(purchase.amount)"),
    ("first_time(login) > last_time(login)",
     "first_time(login) is never more than last_time(login)"),
]  # fmt: skip

MAY_HOLD = [
    "count(login within 30 days) > count(login within 7 days)",
    "count(login within 7 days) >= count(login within 30 days)",  # equal when all are recent
    "count(login within 7 days) > count(purchase within 30 days)",  # other rows
    "count(login where plan = 'pro' within 7 days) > count(login within 30 days)",
    "sum(purchase.amount within 7 days) > sum(purchase.amount within 30 days)",  # negatives
    "count(login) <= 0",
    "count(login) = 0",
    "min(purchase.amount) > max(refund.amount)",
    "min(purchase.amount within 7 days) > max(purchase.amount within 30 days)",
    "count(login since '2026-01-01') > count(login within 7 days)",
    "ltv < 0",
]


@pytest.mark.parametrize(("condition", "why"), NEVER)
def test_a_clause_that_can_never_hold_is_named_with_why(condition: str, why: str) -> None:
    assert never_holds(parse_condition(condition)) == why


@pytest.mark.parametrize("condition", MAY_HOLD)
def test_a_clause_that_may_hold_is_left_alone(condition: str) -> None:
    assert never_holds(parse_condition(condition)) is None
