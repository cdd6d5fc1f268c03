"""Retention on the real databases: batches that ended long ago go with everything they left,
old uploads go unless a running batch reads them, and nothing recent is touched."""
from __future__ import annotations

import time

from classifier.jobs.retention import purge
from classifier.jobs.store import JobStore
from classifier.jobs.tables import batches, files, lines, webhooks
from tests.test_job_fairness import store  # noqa: F401 - the fixture, on SQLite and PostgreSQL
from tests.test_outbox import ended


def aged(store: JobStore, table, days: float, *columns: str, where=None) -> None:  # noqa: F811
    then = int(time.time() - days * 86400)
    with store.engine.begin() as db:
        db.execute(table.update().where(where if where is not None else True).values(**{c: then for c in columns}))


def test_what_ended_past_the_retention_goes_with_everything_it_left(store: JobStore) -> None:  # noqa: F811
    old = ended(store)
    recent = ended(store)
    running_input = store.add_file("alice", "in.jsonl", "batch", b"{}\n")["id"]
    running = store.create_batch("alice", running_input, "/v1/classify", 3600, "1h", {}, [], 1)["id"]
    old_upload = store.add_file("alice", "old.jsonl", "batch", b"{}\n")["id"]
    aged(store, batches, 40, "completed_at", where=batches.c.id == old)
    aged(store, files, 40, "created_at", where=files.c.id.in_([running_input, old_upload, f"file-{old}-output"]))
    assert store.file_path(f"file-{old}-output").exists()
    assert purge(store, 30) == (1, 2)
    assert store.get_batch(None, old) is None and store.get_batch(None, recent) is not None
    assert store.get_batch(None, running) is not None
    assert not store.file_path(f"file-{old}-output").exists() and not store.file_path(old_upload).exists()
    assert store.file_path(running_input).exists(), "a running batch's input stays"
    with store.engine.connect() as db:
        assert not db.execute(lines.select().where(lines.c.batch_id == old)).first()
        assert not db.execute(webhooks.select().where(webhooks.c.batch_id == old)).first()
    assert purge(store, 30) == (0, 0)
