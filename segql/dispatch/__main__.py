"""``python -m segql.dispatch``: the dispatcher as a process of its own."""

from __future__ import annotations

import sys

from segql.dispatch.commands import main

sys.exit(main())
