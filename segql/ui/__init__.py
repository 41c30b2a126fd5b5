"""``segql ui``: the local app (runtime.md 8.7), on 127.0.0.1 only.

``server`` binds and serves; ``security`` is the token, Host and CSRF guard; ``workspace``
opens the project and a connection per request; ``views`` gathers each page's figures
through the functions the command line uses; ``builder`` checks, counts and saves a
condition; ``app`` holds the routes. Templates (``templates/*.html.j2``) and the script and
styles (``static/``) are package data: no build step, nothing fetched from elsewhere.
"""

from __future__ import annotations

from segql.ui.server import serve

__all__ = ["serve"]
