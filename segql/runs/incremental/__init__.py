"""Incremental runs (runtime.md 8.1): per-person state, kept between runs, brought to the
as-of time from only the rows that changed the answer, or recomputed where that cannot be
proven. ``kinds``: how each value can be updated; ``builder``: the query split at stage 0;
``state``: where the state lives; ``step``: one run's decision and statements."""

from __future__ import annotations

from segql.runs.incremental.step import StateStep, describe_membership, describe_mode

__all__ = ["StateStep", "describe_membership", "describe_mode"]
