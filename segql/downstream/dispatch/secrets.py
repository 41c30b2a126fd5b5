"""Values read from ``${ENV}`` in an action, and their redaction from every message.

An action's URL, headers and token may hold secrets. Each value ``expand`` reads from the
environment is remembered, and ``redact`` replaces it (and the forms an HTTP library
prints it in) in any text before that text reaches output, an error, a file or a table.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

from segql.config import expand_env

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "***"
# Shorter values are not secrets worth the false matches (a variable holding "1").
_SHORTEST = 4


class Secrets:
    """The environment values one action uses, to keep them out of every message."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def expand(self, text: str, what: str) -> str:
        """``text`` with ``${VAR}`` replaced; each value read is remembered as secret."""
        import os

        for name in _ENV_VAR.findall(text):
            value = os.environ.get(name)
            if value is not None and len(value) >= _SHORTEST:
                self.values.add(value)
                # The forms a value takes in a URL, a header or a repr of either.
                self.values.update({quote(value, safe=""), quote_plus(value), repr(value)[1:-1]})
                for line in value.splitlines():
                    if len(line) >= _SHORTEST:
                        self.values.add(line)
        return expand_env(text, what)

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        for value in sorted(self.values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text
