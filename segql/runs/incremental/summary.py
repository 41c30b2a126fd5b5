"""The run's data summary of the events, kept with the state between incremental runs.

A full run counts every event: rows, rows after the as-of, rows of people not in the
entity table, rows without a person, rows with malformed properties. Those counts are
sums over rows, so they split at the as-of ``L``: the rows dated at or before ``L`` and
the others (after ``L``, or without a time). A run keeps the first part's counts with the
state (``segql_meta``); the next incremental run at ``T`` reads only the rows after ``L``,
the rows without a time and the rows loaded since the state's high-water mark (late rows),
and adds them to the kept counts.

That holds while the rows at or before ``L`` are the ones the state read (what makes the
run incremental at all) and the entity table holds the same ids (an event of a person
added or removed changes sides between known and unknown): otherwise the run counts every
event, as a full run does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The kept counts, in this order (the JSON of ``segql_meta``'s ``state.summary``).
FIELDS = ("events", "events_of_unknown_people", "events_without_person", "malformed")


@dataclass(frozen=True)
class EventCounts:
    """The summary's event counts: all of them, and those of the rows up to the as-of."""

    everything: tuple[int, ...]  # FIELDS, over every row
    after_as_of: int
    upto_as_of: tuple[int, ...]  # FIELDS, over the rows at or before the as-of

    @classmethod
    def of_groups(
        cls, groups: Sequence[Sequence[Any]], base: Sequence[int] | None
    ) -> EventCounts:
        """From the rows of the summary query, ``(after, rows, unknown, without person[,
        malformed])`` grouped by ``after`` (true, false, null: no time), and the counts
        kept for the rows up to the last run's as-of that the query did not read."""
        kept = tuple(base) if base is not None else (0,) * len(FIELDS)
        everything = list(kept)
        upto = list(kept)
        after = 0
        for after_flag, *counts in groups:
            values = [int(value or 0) for value in counts]
            values += [0] * (len(FIELDS) - len(values))
            everything = [a + b for a, b in zip(everything, values, strict=True)]
            if after_flag is None:
                continue  # no time: read again by every run
            if _true(after_flag):
                after += values[0]
            else:
                upto = [a + b for a, b in zip(upto, values, strict=True)]
        return cls(tuple(everything), after, tuple(upto))

    def totals(self, with_malformed: bool) -> list[int]:
        """``events, after the as-of, of unknown people, without a person[, malformed]``."""
        found = [self.everything[0], self.after_as_of, self.everything[1], self.everything[2]]
        return [*found, self.everything[3]] if with_malformed else found


def _true(value: object) -> bool:
    """A boolean as the drivers return it (fakesnow and some drivers: text or numbers)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "1")
    return bool(value)
