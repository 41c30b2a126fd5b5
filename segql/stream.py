"""Rows written as they are read, for feeds too large to hold (``segql changes``).

The same three formats as ``segql.output.render``: JSON and CSV are written row by row
with the same text; a table is aligned chunk by chunk (columns only widen), so memory is
one chunk. ``wait_until_read`` tells whether the reader of a pipe took everything.
"""

from __future__ import annotations

import errno
import json
import os
import select
import stat
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import IO, Any

from segql.output import Format, _plain, render, table_chunk

CHUNK = 1000
Write = Callable[[str], None]


def write_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: Format, write: Write
) -> int:
    """Write ``rows`` under ``columns`` as they come; returns how many were written.
    ``write`` is called once per chunk of rows, each chunk ending in a newline."""
    iterator = iter(rows)
    count = 0
    first = True
    widths: list[int] | None = None
    while True:
        chunk = list(islice(iterator, CHUNK))
        if not chunk and not first:
            break
        if fmt == "json":
            records = [
                json.dumps(dict(zip(columns, (_plain(v) for v in row), strict=True)),
                           indent=2, ensure_ascii=False)
                for row in chunk
            ]  # fmt: skip
            body = ",\n".join("\n".join("  " + line for line in r.split("\n")) for r in records)
            if first:
                write("[]\n" if not chunk else "[\n" + body)
            elif chunk:
                write(",\n" + body)
        elif fmt == "csv":
            text = render(columns, chunk, "csv")
            write((text if first else text.split("\n", 1)[1] if chunk else "") + "\n")
        else:
            widths, text = table_chunk(columns, chunk, widths, header=first)
            write(text + "\n")
        count += len(chunk)
        first = False
        if len(chunk) < CHUNK:
            break
    if fmt == "json" and count:
        write("\n]\n")
    return count


def is_pipe(stream: IO[str]) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def wait_until_read(stream: IO[str], poll_seconds: float = 0.05) -> bool:
    """For a pipe: wait until its reader took every byte written (True) or closed its end
    with bytes unread (False). Anything else than a pipe: True (the write succeeded)."""
    if not is_pipe(stream):
        return True
    import fcntl
    import termios

    fd = stream.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLERR | select.POLLHUP)
    buffer = bytearray(4)
    while True:
        try:
            fcntl.ioctl(fd, termios.FIONREAD, buffer)
        except OSError as error:
            if error.errno in (errno.EINVAL, errno.ENOTTY):
                return True  # this system cannot tell: the write succeeded
            raise
        if int.from_bytes(buffer, "little") == 0:
            return True
        if poller.poll(int(poll_seconds * 1000)):
            return False
