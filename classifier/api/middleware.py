"""Pure ASGI middleware (no per-request task or body copy): metrics, API key, body size.

They run before FastAPI parses anything, so a request without the key or with a huge
body costs the server nothing beyond its headers.
"""
from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import Metrics
from .protocol import JSONBody, error_body

OPEN_PATHS = frozenset({"/health", "/ready"})


class RequestMetrics:
    """Counts every HTTP request by route, method and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: frozenset[str]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in self.routes else "other"  # bounded label values
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def key_owner(key: str | None) -> str:
    """Who owns jobs: a digest of the API key (keys themselves are never stored); "" without keys."""
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else ""


class BearerAuth:
    """With API keys set, every path but /health and /ready needs `Authorization: Bearer KEY`
    with one of them (else 401). The request's `state.owner` says which key it was."""

    def __init__(self, app: ASGIApp, api_keys: tuple[str, ...]) -> None:
        self.app, self.keys = app, [key.encode() for key in api_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        matched = [key for key in self.keys if hmac.compare_digest(token, key)]  # every key compared: no timing hint
        if scheme.lower() == b"bearer" and matched:
            scope.setdefault("state", {})["owner"] = key_owner(matched[0].decode())
            return await self.app(scope, receive, send)
        detail = (
            "the API key is wrong" if header
            else "this server needs an API key: send the header Authorization: Bearer <key>"
        )  # fmt: skip
        await JSONBody(error_body(401, detail), status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


class BodyLimit:
    """Refuses bodies over `max_bytes` with 413, by Content-Length or while they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONBody(error_body(413, self._message(int(length))), status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, self._message(seen))  # FastAPI re-raises it as the answer
            return message

        await self.app(scope, counted, send)

    def _message(self, size: int) -> str:
        return f"the body has {size} bytes or more; the limit is {self.max_bytes}: send fewer or shorter texts"
