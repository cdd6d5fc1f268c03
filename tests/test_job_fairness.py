"""Fairness between API keys and between jobs and live requests, on the real databases:
chunks are claimed round-robin across owners; two workers on one SQLite file never take one
chunk twice; job lines hold at most their share of the live queue; a batch that ended
leaves no running chunk counted."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from classifier.batching import JOB_SHARE, Overloaded, RequestBatcher
from classifier.jobs.store import JobStore, Line
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings
from tests.jobs_support import postgres_database
from tests.scripted import ScriptedProcessor, oracle
from tests.test_service import GOLD, capability_answers
from tests.trees import training


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        opened = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path)
        yield opened
        opened.close()
        return
    with postgres_database() as url:
        opened = JobStore(url, tmp_path)
        yield opened
        opened.close()


def batch(store: JobStore, owner: str, lines: int, chunk_size: int = 1) -> str:
    requests = [Line(k + 1, f"{owner}{k}", {"texts": ["x"]}) for k in range(lines)]
    return store.create_batch(owner, "file-x", "/v1/classify", 3600, "1h", {}, requests, chunk_size)["id"]


def test_chunks_go_round_robin_across_owners(store: JobStore) -> None:
    big = batch(store, "alice", 20)
    small = batch(store, "bob", 2)  # created after alice's whole batch
    taken = []
    for _ in range(4):
        claim = store.claim("w1", 60)
        taken.append(claim.batch_id)
        store.complete(claim, "w1", {line.line_no: ('{"ok": 1}', None) for line in claim.lines})
    assert taken == [big, small, big, small], "bob's small batch does not wait behind alice's big one"


def test_two_workers_on_one_sqlite_file_never_take_a_chunk_twice(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    first, second = JobStore(url, tmp_path), JobStore(url, tmp_path)
    batch(first, "alice", 40)
    claimed: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def work(store: JobStore, name: str) -> None:
        try:
            while (claim := store.claim(name, 60)) is not None:
                claimed.append((claim.batch_id, claim.chunk_no))
                assert store.complete(claim, name, {line.line_no: ('{"ok": 1}', None) for line in claim.lines})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s, n)) for s, n in ((first, "w1"), (second, "w2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    first.close(), second.close()
    assert not errors, errors
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_a_batch_that_ended_leaves_no_running_chunk_counted(store: JobStore) -> None:
    expired = batch(store, "alice", 3)
    assert store.claim("w1", 60) is not None and store.counts()["running_chunks"] == 1
    with store.engine.begin() as db:  # the batch expires while its chunk runs
        from classifier.jobs.tables import batches
        db.execute(batches.update().where(batches.c.id == expired).values(status="expired"))
    assert store.counts()["running_chunks"] == 0


async def test_job_lines_hold_at_most_their_share_of_the_queue() -> None:
    release = asyncio.Event()

    class Held(ScriptedProcessor):
        async def process_with_schema(self, prompts, schema, *, max_tokens=256):
            await release.wait()
            return await super().process_with_schema(prompts, schema, max_tokens=max_tokens)

    service = ClassificationService(Held(oracle(GOLD, capability_answers)), {"topics": training()},
                                    ClassifierSettings())
    batcher = RequestBatcher(service, window=0.0, max_queued_texts=10)
    job = asyncio.create_task(batcher.classify(["a"] * int(10 * JOB_SHARE), background=True))
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded, match="job lines hold 5 of the 5"):
        await batcher.classify(["b"], background=True)
    live = asyncio.create_task(batcher.classify(["c"] * 5))  # the other half is the live requests'
    await asyncio.sleep(0.05)
    assert batcher.queued_texts == 10 and batcher.background_texts == 5
    release.set()
    await asyncio.gather(job, live)
    assert batcher.queued_texts == batcher.background_texts == 0
