"""Notices when a batch ends, signed the Standard Webhooks way, to allow-listed hosts only.

The signature is `v1,` + base64(HMAC-SHA256(secret, f"{webhook-id}.{webhook-timestamp}.{body}")),
sent in `webhook-signature` beside `webhook-id` and `webhook-timestamp`; a secret written
`whsec_<base64>` is decoded as the convention says, any other is used as its bytes.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

logger = logging.getLogger(__name__)
EVENTS = {"completed": "batch.completed", "failed": "batch.failed", "expired": "batch.expired",
          "cancelled": "batch.cancelled"}  # fmt: skip
TIMEOUT_S = 10.0


class WebhookRefused(ValueError):
    """A webhook URL this server may not call."""


def check_url(url: str, allowed: tuple[str, ...]) -> None:
    """Refuse a URL whose host is not on --webhook-allow (none is, by default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"metadata.webhook_url {url!r} is not an http(s) URL")
    if parts.hostname not in allowed:
        listed = ", ".join(allowed) or "none"
        raise WebhookRefused(f"metadata.webhook_url host {parts.hostname!r} is not allowed (allowed: {listed}); "
                             "the server's operator adds hosts with --webhook-allow HOST")


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret_bytes(secret), f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


async def deliver(url: str, batch: dict[str, Any], secret: str | None, *, attempts: int, backoff: float,
                  record: Callable[[dict[str, Any]], Any]) -> bool:
    """POST the batch's event until a 2xx, at most `attempts` times with doubling waits;
    `record(attempt)` is called after each try. True once delivered."""
    message_id = f"msg_{uuid.uuid4().hex}"
    event = {"type": EVENTS[batch["status"]], "timestamp": int(time.time()), "data": batch}
    body = json.dumps(event).encode()
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
        for attempt in range(1, attempts + 1):
            timestamp = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": message_id,
                       "webhook-timestamp": str(timestamp)}  # fmt: skip
            if secret:
                headers["webhook-signature"] = sign(secret, message_id, timestamp, body)
            try:
                response = await client.post(url, content=body, headers=headers)
                outcome: dict[str, Any] = {"status_code": response.status_code}
                ok = 200 <= response.status_code < 300
            except httpx.HTTPError as exc:
                outcome, ok = {"error": f"{type(exc).__name__}: {exc}"}, False
            await record({"attempt": attempt, "at": timestamp, "event": event["type"], **outcome})
            if ok:
                return True
            if attempt < attempts:
                await asyncio.sleep(backoff * 2 ** (attempt - 1))
    logger.warning("webhook for %s to %s not delivered after %d attempts", batch["id"], url, attempts)
    return False
