"""The webhook outbox: a batch's notice is written in the same transaction that ends the
batch, then delivered by any worker until delivered or given up.

So a crash between the end of a batch and its notice, or a restart during the backoff,
loses nothing: the row is still there, and whichever worker looks next takes it. Each
notice keeps one `webhook-id` (`msg_<batch>_<status>`) across its retries and redeliveries,
so a receiver can drop duplicates; a row is leased while one worker sends it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from .tables import webhooks

EVENTS = {"completed": "batch.completed", "failed": "batch.failed", "expired": "batch.expired",
          "cancelled": "batch.cancelled"}  # fmt: skip
SEND_LEASE_S = 60.0  # one attempt's hold on a notice; a worker that dies sending it frees it after this


@dataclass(frozen=True)
class Notice:
    id: str  # the webhook-id
    batch_id: str
    url: str
    body: bytes
    attempt: int  # this attempt's number, from 1


def enqueue(db: Connection, batch: dict[str, Any]) -> None:
    """Within the transaction that ends `batch`: its notice, if it asked for one (once)."""
    url = batch["metadata"].get("webhook_url")
    if not url or batch["status"] not in EVENTS:
        return
    event = {"type": EVENTS[batch["status"]], "timestamp": int(time.time()), "data": batch}
    row = {"id": f"msg_{batch['id']}_{batch['status']}", "batch_id": batch["id"], "url": url,
           "body": json.dumps(event), "attempts": 0, "next_at": time.time(), "state": "pending"}  # fmt: skip
    insert = postgresql_insert if db.dialect.name == "postgresql" else sqlite_insert
    db.execute(insert(webhooks).values(**row).on_conflict_do_nothing(index_elements=[webhooks.c.id]))


def take(engine: Engine) -> Notice | None:
    """A notice due now that no one is sending, leased to the caller for one attempt."""
    now = time.time()
    free = and_(webhooks.c.state == "pending", webhooks.c.next_at <= now,
                or_(webhooks.c.lease_until.is_(None), webhooks.c.lease_until < now))
    with engine.begin() as db:
        row = db.execute(select(webhooks).where(free).order_by(webhooks.c.next_at).limit(1)).first()
        if row is None:
            return None
        taken = db.execute(update(webhooks).where(webhooks.c.id == row.id, free)
                           .values(lease_until=now + SEND_LEASE_S)).rowcount
    return Notice(row.id, row.batch_id, row.url, row.body.encode(), row.attempts + 1) if taken else None


def settle(engine: Engine, notice: Notice, delivered: bool, *, attempts: int, backoff: float) -> str:
    """After one attempt: delivered, given up (the last attempt failed), or due again after
    a doubling wait. Returns the notice's new state."""
    state = "delivered" if delivered else "given_up" if notice.attempt >= attempts else "pending"
    with engine.begin() as db:
        db.execute(update(webhooks).where(webhooks.c.id == notice.id)
                   .values(state=state, attempts=notice.attempt, lease_until=None,
                           next_at=time.time() + backoff * 2 ** (notice.attempt - 1)))
    return state
