"""List segments (``segment NAME from list 'lists/NAME.csv'``): the ids of a list file.

A list file is a CSV file relative to the project's folder whose first column holds one
id per row; empty rows are skipped, and so is a first row reading ``person_id`` or the
entity's id column (a header).
"""

from __future__ import annotations

import csv
from pathlib import Path

from segql.errors import SegqlDefinitionError, Span

LIST_COLUMN = "person_id"  # the column of ids of a ``from table`` list


def read_id_list(root: Path, path: str, header: str, span: Span | None = None) -> list[str]:
    """The ids of the list file ``path`` (relative to ``root``), in file order, unique."""
    file = root / path
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            rows = [row for row in csv.reader(handle) if row and row[0].strip()]
    except OSError as error:
        raise SegqlDefinitionError(
            f"cannot read the list file '{path}': {error.strerror or error}", span
        ) from None
    except (UnicodeDecodeError, csv.Error) as error:
        message = f"the list file '{path}' is not CSV text: {error}"
        raise SegqlDefinitionError(message, span) from None
    ids = [row[0].strip() for row in rows]
    if ids and ids[0] in (LIST_COLUMN, header):
        ids = ids[1:]
    return list(dict.fromkeys(ids))
