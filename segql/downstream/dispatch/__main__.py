"""``python -m segql.downstream.dispatch``: the dispatcher as a process of its own."""

from __future__ import annotations

import sys

from segql.downstream.dispatch.commands import main

sys.exit(main())
