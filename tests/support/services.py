"""Local stand-ins for Resend's audience contacts API and Meta's custom audience users
API, as their documentation describes them (requests, answers, errors, rate limits).

Each runs a ThreadingHTTPServer on 127.0.0.1 in a thread, holds the audience in memory,
and can fail on purpose: ``throttle`` of requests are answered as the service answers
when its rate limit is hit (Resend: 429 with ``Retry-After``; Meta: an error with code
80003), before anything is changed.
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

HEX64 = re.compile(r"^[0-9a-f]{64}$")


class _Server:
    def __init__(self, token: str, throttle: float = 0.0, seed: int = 3):
        self.token = token
        self.throttle = throttle
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.throttled = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.dispatch(self, "GET")

            def do_POST(self) -> None:
                server.dispatch(self, "POST")

            def do_DELETE(self) -> None:
                server.dispatch(self, "DELETE")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def dispatch(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((method, request.path))
            throttled = self.random.random() < self.throttle
            if throttled:
                self.throttled += 1
        status, headers, answer = (
            self.rate_limited() if throttled else self.handle(method, request, body)
        )
        data = json.dumps(answer).encode()
        request.send_response(status)
        for key, value in {**headers, "Content-Type": "application/json"}.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def rate_limited(self) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError

    def handle(
        self, method: str, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError


class FakeResend(_Server):
    """``/audiences/{id}/contacts``: create (POST), remove by id or email (DELETE), list
    (GET, ``limit`` and ``after``). Errors are ``{"statusCode", "name", "message"}``."""

    def __init__(self, token: str, audience_id: str, throttle: float = 0.0, page: int = 50):
        self.audience_id = audience_id
        self.contacts: dict[str, dict[str, Any]] = {}  # by lowercased email
        self.page = page
        self.unavailable: set[str] = set()  # emails whose POST is answered 503
        super().__init__(token, throttle)

    def emails(self) -> set[str]:
        with self.lock:
            return {c["email"] for c in self.contacts.values()}

    def rate_limited(self) -> tuple[int, dict[str, str], Any]:
        message = "Too many requests. You can only make 2 requests per second."
        error = {"statusCode": 429, "name": "rate_limit_exceeded", "message": message}
        return 429, {"Retry-After": "0", "ratelimit-limit": "2", "ratelimit-remaining": "0"}, error

    def error(self, status: int, name: str, message: str) -> tuple[int, dict[str, str], Any]:
        return status, {}, {"statusCode": status, "name": name, "message": message}

    def handle(
        self, method: str, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self.error(
                401, "missing_api_key", "Missing API key in the authorization header."
            )
        parts = urlsplit(request.path)
        match = re.fullmatch(r"/audiences/([^/]+)/contacts(?:/([^/]+))?", parts.path)
        if not match:
            return self.error(404, "not_found", "The requested endpoint does not exist.")
        if unquote(match.group(1)) != self.audience_id:
            return self.error(404, "not_found", "Audience not found")
        contact = unquote(match.group(2)) if match.group(2) else None
        with self.lock:
            if method == "POST" and contact is None:
                fields = json.loads(body or b"{}")
                email = fields.get("email")
                if not isinstance(email, str) or not re.fullmatch(
                    r"[^@\s]+@[^@\s]+\.[^@\s]+", email
                ):
                    return self.error(422, "validation_error", "Invalid `email` field.")
                if email in self.unavailable:
                    return self.error(503, "internal_server_error", "Service unavailable")
                known = self.contacts.get(email.lower())
                entry = {"id": known["id"] if known else str(uuid.uuid4()), "email": email,
                         "first_name": fields.get("first_name", ""),
                         "last_name": fields.get("last_name", ""),
                         "unsubscribed": bool(fields.get("unsubscribed", False))}  # fmt: skip
                self.contacts[email.lower()] = entry
                return 200, {}, {"object": "contact", "id": entry["id"]}
            if method == "DELETE" and contact is not None:
                key = next(
                    (k for k, c in self.contacts.items() if contact in (c["id"], c["email"])),
                    contact.lower() if contact.lower() in self.contacts else None,
                )
                if key is None:
                    return self.error(404, "not_found", "Contact not found")
                entry = self.contacts.pop(key)
                return 200, {}, {"object": "contact", "contact": entry["id"], "deleted": True}
            if method == "GET" and contact is None:
                query = parse_qs(parts.query)
                limit = min(int(query.get("limit", ["100"])[0]), self.page)
                ordered = sorted(self.contacts.values(), key=lambda c: c["id"])
                after = query.get("after", [None])[0]
                if after is not None:
                    ordered = [c for c in ordered if c["id"] > after]
                data = ordered[:limit]
                return 200, {}, {"object": "list", "has_more": len(ordered) > limit, "data": data}
        return self.error(405, "method_not_allowed", "Method not allowed")


class FakeMetaAudience(_Server):
    """``/{audience_id}/users``: add (POST) and remove (DELETE) hashed users, a form field
    ``payload`` of ``{"schema", "data"}``, at most 10,000 rows; Graph API errors."""

    def __init__(self, token: str, audience_id: str, throttle: float = 0.0):
        self.audience_id = audience_id
        self.users: set[tuple[str, ...]] = set()
        self.largest = 0
        super().__init__(token, throttle)

    def hashes(self) -> set[tuple[str, ...]]:
        with self.lock:
            return set(self.users)

    def rate_limited(self) -> tuple[int, dict[str, str], Any]:
        return self.error(
            400,
            80003,
            "There have been too many calls to this ad-account. Wait a bit and try again.",
        )

    def error(self, status: int, code: int, message: str) -> tuple[int, dict[str, str], Any]:
        error = {"message": message, "type": "OAuthException", "code": code,
                 "fbtrace_id": "A1b2C3d4"}  # fmt: skip
        return status, {}, {"error": error}

    def handle(
        self, method: str, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self.error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if urlsplit(request.path).path != f"/{self.audience_id}/users" or method == "GET":
            return self.error(400, 100, "Unsupported request - method type: " + method.lower())
        form = parse_qs(body.decode())
        try:
            payload = json.loads(form["payload"][0])
            schema, data = payload["schema"], payload["data"]
        except (KeyError, ValueError, IndexError):
            return self.error(400, 100, "(#100) The parameter payload is required")
        columns = schema if isinstance(schema, list) else [schema]
        if len(data) > 10_000:
            return self.error(400, 100, "(#100) Too many users in one request: at most 10000")
        rows = [tuple(r) if isinstance(r, list) else (r,) for r in data]

        def ok(column: str, value: str) -> bool:
            return bool(HEX64.match(value) or (column == "EXTERN_ID" and value) or value == "")

        valid = [
            r
            for r in rows
            if len(r) == len(columns) and all(ok(c, v) for c, v in zip(columns, r, strict=True))
        ]
        with self.lock:
            self.largest = max(self.largest, len(rows))
            if method == "POST":
                self.users.update(valid)
            else:
                self.users.difference_update(valid)
        answer = {"audience_id": self.audience_id, "session_id": str(random.getrandbits(60)),
                  "num_received": len(rows), "num_invalid_entries": len(rows) - len(valid),
                  "invalid_entry_samples": {}}  # fmt: skip
        return 200, {}, answer
