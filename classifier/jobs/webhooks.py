"""Notices when a batch ends, signed the Standard Webhooks way, to allow-listed hosts only.
The notices wait in the outbox (`outbox`) until sent; here is one attempt at sending one.

The signature is `v1,` + base64(HMAC-SHA256(secret, f"{webhook-id}.{webhook-timestamp}.{body}")),
sent in `webhook-signature` beside `webhook-id` and `webhook-timestamp`; a secret written
`whsec_<base64>` is decoded as the convention says, any other is used as its bytes.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from .outbox import Notice

logger = logging.getLogger(__name__)
TIMEOUT_S = 10.0


class WebhookRefused(ValueError):
    """A webhook URL this server may not call."""


def check_url(url: str, allowed: tuple[str, ...]) -> None:
    """Refuse a URL whose host is not on --webhook-allow (none is, by default). An entry is
    a host (any port) or host:port; host names compare case-insensitively."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused(f"metadata.webhook_url {url!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"metadata.webhook_url {url!r} is not an http(s) URL")
    host = parts.hostname.lower()
    entries = {entry.lower() for entry in allowed}
    if host not in entries and f"{host}:{port}" not in entries:
        listed = ", ".join(allowed) or "none"
        raise WebhookRefused(f"metadata.webhook_url host {parts.hostname!r} (port {port}) is not allowed (allowed: "
                             f"{listed}); the server's operator adds hosts with --webhook-allow HOST or HOST:PORT")


def secret_bytes(secret: str) -> bytes:
    """The signing key: `whsec_<base64>` decoded as the convention says, any other string as
    its bytes. `ValueError` for a whsec_ secret that is not base64."""
    if not secret.startswith("whsec_"):
        return secret.encode()
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("a whsec_ secret must be base64 after the prefix (Standard Webhooks)") from None
    if not key:
        raise ValueError("the whsec_ secret is empty after the prefix")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret_bytes(secret), f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


async def send(client: httpx.AsyncClient, notice: Notice, secret: str | None) -> tuple[bool, dict[str, Any]]:
    """One attempt: POST the notice, signed; whether it was delivered (a 2xx), and what to record."""
    timestamp = int(time.time())
    headers = {"content-type": "application/json", "webhook-id": notice.id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, notice.id, timestamp, notice.body)
    event = json.loads(notice.body)["type"]
    try:
        response = await client.post(notice.url, content=notice.body, headers=headers)
        outcome: dict[str, Any] = {"status_code": response.status_code}
        ok = 200 <= response.status_code < 300
    except httpx.HTTPError as exc:
        outcome, ok = {"error": f"{type(exc).__name__}: {exc}"}, False
    return ok, {"attempt": notice.attempt, "at": timestamp, "event": event, **outcome}
