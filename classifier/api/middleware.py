"""Pure ASGI middleware (no per-request task or body copy): metrics, API key, body size.

They run before FastAPI parses anything, so a request without the key or with a huge
body costs the server nothing beyond its headers.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import Metrics
from .protocol import JSONBody, error_body

OPEN_PATHS = frozenset({"/health", "/ready"})
UPLOAD_PATH = "/v1/files"


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


def _owner(request: Request) -> str:
    """The API key's digest (set by BearerAuth), or "" on a server without keys."""
    return getattr(request.state, "owner", "")


OwnerDep = Annotated[str, Depends(_owner)]  # who asks: jobs, labels and answers are kept per owner


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
    """Bounds request bodies, by Content-Length or while they stream in: one body to
    `max_bytes` (uploads to `/v1/files`: `max_upload_bytes`), else 413 naming the limit; and
    the bytes of all bodies being received at once to `max_in_flight`, else 503 with
    Retry-After, so many slow large bodies cannot add up to the server's memory."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int, max_in_flight: int) -> None:
        self.app, self.max_bytes, self.max_upload_bytes, self.max_in_flight = app, max_bytes, max_upload_bytes, max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope["path"] == UPLOAD_PATH
        limit = self.max_upload_bytes if upload else self.max_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = JSONBody(error_body(413, self._message(int(length), limit, upload)), status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            size = len(message.get("body", b""))
            seen += size
            self.in_flight += size
            if seen > limit:
                raise HTTPException(413, self._message(seen, limit, upload))  # FastAPI re-raises it as the answer
            if self.in_flight > self.max_in_flight:
                raise HTTPException(503, f"the server is receiving {self.in_flight} bytes of request bodies, past its "
                                         f"bound of {self.max_in_flight} (--max-bodies-in-flight-mb); retry shortly",
                                    headers={"Retry-After": "1"})
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            self.in_flight -= seen

    @staticmethod
    def _message(size: int, limit: int, upload: bool) -> str:
        if upload:
            return (f"the upload has {size} bytes or more; the upload limit is {limit} (--max-upload-mb): split the "
                    "file into several batches")
        return (f"the body has {size} bytes or more; the request body limit is {limit} (--max-body-mb): send fewer "
                "or shorter texts, or upload a file as a batch job")
