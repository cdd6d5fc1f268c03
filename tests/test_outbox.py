"""The webhook outbox on the real databases: a batch's notice is written with its end, so a
crash before sending loses nothing; a redo of the end writes it once; retries keep its
webhook-id; a notice being sent is leased; the last failed attempt gives it up."""
from __future__ import annotations

import json
import time

from classifier.jobs import outbox
from classifier.jobs.store import JobStore
from classifier.jobs.tables import webhooks
from tests.test_job_fairness import batch, store  # noqa: F401 - the fixture, on SQLite and PostgreSQL


def ended(store: JobStore, url: str | None = "http://127.0.0.1:9/hook") -> str:  # noqa: F811
    batch_id = batch(store, "alice", 1)
    if url:
        with store.engine.begin() as db:
            from classifier.jobs.tables import batches
            db.execute(batches.update().where(batches.c.id == batch_id).values(metadata=json.dumps({"webhook_url": url})))
    claim = store.claim("w1", 60)
    store.complete(claim, "w1", {line.line_no: ('{"ok": 1}', None) for line in claim.lines})
    assert store.begin_finalizing(batch_id, "completed", 60)
    store.finish(batch_id, "completed")
    return batch_id


def test_the_notice_is_written_with_the_end_and_survives_until_sent(store: JobStore) -> None:  # noqa: F811
    batch_id = ended(store)
    store.finish(batch_id, "completed")  # a redo after a crash writes the same notice, once
    with store.engine.connect() as db:
        assert db.execute(webhooks.select()).all().__len__() == 1
    # A fresh process (nothing in memory) finds it.
    again = JobStore(str(store.engine.url.render_as_string(hide_password=False)), store.data_dir)
    try:
        notice = outbox.take(again.engine)
        assert notice is not None and notice.id == f"msg_{batch_id}_completed" and notice.attempt == 1
        assert json.loads(notice.body)["type"] == "batch.completed"
        assert outbox.take(again.engine) is None, "leased while one worker sends it"
        assert outbox.settle(again.engine, notice, False, attempts=2, backoff=0.0) == "pending"
        retry = outbox.take(again.engine)
        assert retry.id == notice.id and retry.attempt == 2, "the same webhook-id on every attempt"
        assert outbox.settle(again.engine, retry, False, attempts=2, backoff=0.0) == "given_up"
        assert outbox.take(again.engine) is None
    finally:
        again.close()


def test_the_backoff_holds_a_failed_notice_back(store: JobStore) -> None:  # noqa: F811
    ended(store)
    notice = outbox.take(store.engine)
    outbox.settle(store.engine, notice, False, attempts=5, backoff=30.0)
    assert outbox.take(store.engine) is None
    with store.engine.begin() as db:
        db.execute(webhooks.update().values(next_at=time.time() - 1))
    assert outbox.take(store.engine).attempt == 2


def test_a_batch_without_a_webhook_queues_nothing(store: JobStore) -> None:  # noqa: F811
    ended(store, url=None)
    assert outbox.take(store.engine) is None
