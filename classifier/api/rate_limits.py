"""Rate limits per API key and route family (`--rate-limit FAMILY=RATE`), off by default.

A family is what a client pays for: `classify` (a `/classify` request), `files` (an upload),
`batches` (a batch created), `labels` (a label posted or deleted). Reads are never limited.
Each key (the digest `BearerAuth` sets; every caller of a server without keys is one) has a
moving window per family, kept by the `limits` library; past it the answer is 429 with a
Retry-After for when the window has room again, counted in /metrics.
"""
from __future__ import annotations

import math
import time
from typing import Mapping

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from .metrics import Metrics
from .protocol import JSONBody, error_body

# (method, path) -> family; a path ending in "/" matches every path below it.
FAMILIES: dict[str, tuple[tuple[str, str], ...]] = {
    "classify": (("POST", "/classify"), ("POST", "/v1/classify")),
    "files": (("POST", "/v1/files"),),
    "batches": (("POST", "/v1/batches"),),
    "labels": (("POST", "/v1/labels"), ("DELETE", "/v1/labels/")),
}


class RateLimitError(ValueError):
    """A `--rate-limit` that cannot be read; the message shows the form."""


def parse_limits(written: tuple[str, ...]) -> dict[str, RateLimitItem]:
    """`("classify=600/minute", ...)` as a family -> limit map; `RateLimitError` names what is wrong."""
    limits: dict[str, RateLimitItem] = {}
    for item in written:
        family, _, rate = item.partition("=")
        if family not in FAMILIES:
            raise RateLimitError(f"--rate-limit {item!r}: the family is one of {', '.join(FAMILIES)} "
                                 "(e.g. classify=600/minute)")
        try:
            limits[family] = parse(rate)
        except ValueError:
            raise RateLimitError(f"--rate-limit {item!r}: the rate is N/second, N/minute or N/hour "
                                 "(e.g. classify=600/minute)") from None
    return limits


def family_of(method: str, path: str) -> str | None:
    for family, routes in FAMILIES.items():
        for route_method, route in routes:
            if method == route_method and (path == route or (route.endswith("/") and path.startswith(route))):
                return family
    return None


class RateLimit:
    """429 with Retry-After past a key's limit for a family; inside `BearerAuth` (it reads the owner)."""

    def __init__(self, app: ASGIApp, limits: Mapping[str, RateLimitItem], metrics: Metrics) -> None:
        self.app, self.limits, self.metrics = app, dict(limits), metrics
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        family = family_of(scope["method"], scope["path"]) if scope["type"] == "http" else None
        limit = self.limits.get(family) if family else None
        if limit is None:
            return await self.app(scope, receive, send)
        owner = scope.get("state", {}).get("owner", "")
        if self.limiter.hit(limit, family, owner):
            return await self.app(scope, receive, send)
        self.metrics.rate_limited.labels(family).inc()
        reset = self.limiter.get_window_stats(limit, family, owner).reset_time
        retry = max(1, math.ceil(reset - time.time()))
        detail = (f"rate limit of {limit} for {family} reached for this API key; retry in {retry} s "
                  "(the server's --rate-limit)")
        await JSONBody(error_body(429, detail), status_code=429, headers={"Retry-After": str(retry)})(
            scope, receive, send)
