"""What keeps ``segql ui`` to the person who started it: the token, the Host check, CSRF.

Every request needs the start's token: once as ``?token=`` in the printed address, which
sets a cookie (HttpOnly, SameSite=Strict, for this port only) and redirects to the same
page without it; after that the cookie. A request whose ``Host`` is not this server's
address (127.0.0.1 or localhost at this port) is refused, so a page elsewhere cannot reach
the app through a name that resolves here (DNS rebinding). A write (POST) also needs the
start's CSRF token in the ``X-CSRF-Token`` header, which only the app's own pages carry,
and an ``Origin``, when the browser sends one, of this server. Every response says the
page may not be framed, sniffed or sent a referrer, and may run only the app's own script.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_PARAMETER = "token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
HEADERS = (
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)  # fmt: skip


@dataclass(frozen=True)
class Secrets:
    """The tokens of one start of ``segql ui``."""

    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @property
    def cookie(self) -> str:
        return f"segql_ui_{self.port}"  # cookies are per host, not per port

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(f"http://{host}:{self.port}" for host in ("127.0.0.1", "localhost"))

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(f"{host}:{self.port}" for host in ("127.0.0.1", "localhost"))

    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}/?{TOKEN_PARAMETER}={self.token}"


class Guard:
    """ASGI middleware: refuses what does not carry this start's tokens."""

    def __init__(self, app: ASGIApp, keys: Secrets):
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("host") not in self.keys.hosts:
            await _refuse(send, 403, "segql ui answers only at its own address (127.0.0.1).")
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        given = dict(query).get(TOKEN_PARAMETER)
        if given is not None and scope["method"] in SAFE_METHODS:
            if not secrets.compare_digest(given, self.keys.token):
                await _refuse(send, 403, _TOKEN_HELP)
                return
            rest = urlencode([(k, v) for k, v in query if k != TOKEN_PARAMETER])
            await _login(send, self.keys, quote(scope["path"]) + (f"?{rest}" if rest else ""))
            return
        cookie = SimpleCookie(headers.get("cookie", "")).get(self.keys.cookie)
        if cookie is None or not secrets.compare_digest(cookie.value, self.keys.token):
            await _refuse(send, 403, _TOKEN_HELP)
            return
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            csrf = headers.get(CSRF_HEADER, "")
            if (origin is not None and origin not in self.keys.origins) or not (
                secrets.compare_digest(csrf, self.keys.csrf)
            ):
                await _refuse(send, 403, "refused: a change must come from segql ui's own page")
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


_TOKEN_HELP = (
    "refused: open the address `segql ui` printed when it started "
    "(http://127.0.0.1:PORT/?token=...); each start has a new token"
)


async def _refuse(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _login(send: Send, keys: Secrets, location: str) -> None:
    cookie = f"{keys.cookie}={keys.token}; Path=/; HttpOnly; SameSite=Strict"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode("latin-1")),
                (b"set-cookie", cookie.encode("latin-1")),
                (b"content-length", b"0"),
                *HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
