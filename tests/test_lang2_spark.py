"""The v2 constructs of language.md 9.5 to 9.8 on Spark (PySpark, local mode): the same
hand-written answers as tests/test_lang2.py, in one module so that Spark starts once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import test_lang2 as cases
from tests.support.engines import in_ci
from tests.test_spark import _spark_missing


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    reason = _spark_missing()
    if reason is not None:
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from tests.support.spark import SparkEngine

    engine = SparkEngine()
    try:
        yield engine
    finally:
        engine.close()


def test_bucket_on_spark(spark: Any) -> None:
    cases.test_bucket_matches_md5_for_integer_ids(spark)
    cases.test_bucket_matches_md5_for_text_ids_and_the_project_salt(spark, "house")


def test_population_values_and_case_on_spark(spark: Any) -> None:
    cases.test_population_values_over_people_with_a_value(spark)
    cases.test_population_values_of_nobody(spark)
    cases.test_top_spenders_and_case_tiers(spark)


def test_history_conditions_on_spark(spark: Any) -> None:
    cases.test_history_conditions_by_hand(spark)
    cases.test_history_conditions_without_history_are_false(spark)
