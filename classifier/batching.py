"""RequestBatcher: requests that arrive within one window are admitted and run together.

The first request for a taxonomy opens a window of `window` seconds; every request for that
taxonomy arriving inside it joins, and then all their jobs go to `ClassificationService.run_jobs`
in one call, each text on its own path and in its own request's name (the backend batches
what is in flight and hands its places between requesters, `llm.fairness`). Results are
split back per request; `BatchStats` counts the passes.

Admission is bounded: texts admitted and not yet answered may not pass
`max_queued_texts`; a request that would pass it gets `Overloaded` (HTTP 503 with
Retry-After), so a burst costs clients a retry, never the server its memory. Job lines
(`background`) may hold at most `JOB_SHARE` of that bound, so live requests always find
room beside a running job; and with API keys, one key's requests at most `KEY_SHARE` of it
once it has texts queued, so one key's flood of requests never fills the queue for the others.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from .service import ClassificationService, Job
from .taxonomy import Taxonomy

logger = logging.getLogger(__name__)
MAX_RETRY_AFTER = 60
JOB_SHARE = 0.5  # of max_queued_texts that job lines may hold at once
KEY_SHARE = 0.5  # of max_queued_texts that one API key's requests may hold at once


class Overloaded(RuntimeError):
    """Too many texts are waiting (or the server is draining); retry after `retry_after` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Request:
    jobs: Sequence[Job]
    future: asyncio.Future[list[dict[str, Any]]]
    background: bool = False
    owner: str = ""  # the API key's digest ("" without keys)


@dataclass
class _Window:
    taxonomy: Taxonomy
    requests: list[_Request] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


@dataclass
class BatchStats:
    """Counters read by /stats: how much coalescing actually happens."""

    batches: int = 0
    requests: int = 0
    texts: int = 0
    largest_batch_texts: int = 0
    isolated_failures: int = 0


class RequestBatcher:
    """Coalesces concurrent `classify` calls; same signature and result as the service's."""

    def __init__(self, service: ClassificationService, *, window: float, max_queued_texts: int) -> None:
        self.service = service
        self.window = window
        self.max_queued_texts = max_queued_texts
        self.queued_texts = 0  # admitted, not yet answered
        self.background_texts = 0  # of which job lines'
        self._per_key: Counter[str] = Counter()  # of which each API key's requests'
        self.stats = BatchStats()
        self._windows: dict[str, _Window] = {}
        self._running: dict[asyncio.Task[None], list[_Request]] = {}
        self._texts_per_second = 0.0  # of the last batch, for Retry-After
        self._closing = False

    async def classify(
        self,
        texts: Sequence[str],
        capabilities: Sequence[str] | None = None,
        project_name: str | None = None,
        taxonomy: str | None = None,
        *,
        background: bool = False,
        owner: str = "",
        route: str | None = None,
    ) -> dict[str, Any]:
        """`ClassificationService.classify`, with the jobs run together with other requests'.
        `background`: a job's line, admitted only within `JOB_SHARE` of the queue bound."""

        async def enqueue(jobs: Sequence[Job], tree: Taxonomy) -> list[dict[str, Any]]:
            return await self._enqueue(jobs, tree, background)

        return await self.service.classify(texts, capabilities, project_name, taxonomy, run=enqueue, owner=owner,
                                           route=route)

    async def _enqueue(self, jobs: Sequence[Job], taxonomy: Taxonomy, background: bool) -> list[dict[str, Any]]:
        owner = "" if background or not jobs else jobs[0].owner  # a job's lines have their own share
        self._admit(len(jobs), background, owner)
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        window = self._windows.get(taxonomy.name)
        if window is None:
            window = self._windows[taxonomy.name] = _Window(taxonomy)
            window.timer = asyncio.get_running_loop().call_later(self.window, self._flush, taxonomy.name)
        window.requests.append(_Request(jobs, future, background, owner))
        return await future

    @property
    def closing(self) -> bool:
        return self._closing

    def _admit(self, count: int, background: bool, owner: str) -> None:
        if self._closing:
            raise Overloaded("the server is shutting down; retry on another instance", retry_after=1)
        job_bound = max(1, int(self.max_queued_texts * JOB_SHARE))
        if background and self.background_texts and self.background_texts + count > job_bound:
            raise Overloaded(f"job lines hold {self.background_texts} of the {job_bound} queued texts jobs may "
                             "hold", retry_after=self._retry_after())
        key_bound = max(1, int(self.max_queued_texts * KEY_SHARE))
        held = self._per_key[owner] if owner else 0
        if held and held + count > key_bound:
            raise Overloaded(f"your API key's requests hold {held} of the {key_bound} queued texts one key may hold "
                             f"and this request adds {count}; wait for answers before sending more",
                             retry_after=self._retry_after())
        if self.queued_texts + count > self.max_queued_texts:
            raise Overloaded(
                f"{self.queued_texts} texts are queued and this request adds {count}; the bound is "
                f"{self.max_queued_texts}. Retry later or send fewer texts per request",
                retry_after=self._retry_after(),
            )
        self.queued_texts += count
        self.background_texts += count if background else 0
        if owner:
            self._per_key[owner] += count

    def _retry_after(self) -> int:
        """Seconds until the queue has room, guessed from the last batch's speed."""
        if self._texts_per_second <= 0:
            return 1
        return max(1, min(MAX_RETRY_AFTER, math.ceil(self.queued_texts / self._texts_per_second)))

    def _flush(self, key: str) -> None:
        window = self._windows.pop(key)
        task = asyncio.create_task(self._run(window.taxonomy, window.requests))
        self._running[task] = window.requests
        task.add_done_callback(self._running.pop)

    async def _run(self, taxonomy: Taxonomy, requests: list[_Request]) -> None:
        jobs = [job for request in requests for job in request.jobs]
        started = time.perf_counter()
        try:
            results = await self.service.run_jobs(jobs, taxonomy)
        except Exception as exc:  # noqa: BLE001 - isolated below, never lost
            if len(requests) > 1:
                # One request's texts broke the shared pass: run each alone, so only
                # the request that fails sees the error.
                self.stats.isolated_failures += 1
                logger.warning("a coalesced batch of %d requests failed (%s); running them one by one",
                               len(requests), exc)
                await asyncio.gather(*(self._run(taxonomy, [r]) for r in requests))
                return
            self._settle(requests[0], exc)
            return
        elapsed = time.perf_counter() - started
        if elapsed > 0:
            self._texts_per_second = len(jobs) / elapsed
        self.stats.batches += 1
        self.stats.requests += len(requests)
        self.stats.texts += len(jobs)
        self.stats.largest_batch_texts = max(self.stats.largest_batch_texts, len(jobs))
        offset = 0
        for request in requests:
            self._settle(request, results[offset : offset + len(request.jobs)])
            offset += len(request.jobs)

    def _settle(self, request: _Request, outcome: list[dict[str, Any]] | Exception) -> None:
        self.queued_texts -= len(request.jobs)
        self.background_texts -= len(request.jobs) if request.background else 0
        if request.owner:
            self._per_key[request.owner] -= len(request.jobs)
            if not self._per_key[request.owner]:
                del self._per_key[request.owner]
        if request.future.done():  # the client went away and its wait was cancelled
            return
        if isinstance(outcome, Exception):
            request.future.set_exception(outcome)
        else:
            request.future.set_result(outcome)

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, run what is waiting now, and wait for every running batch;
        after `timeout` seconds, stop them and answer each text left with its own error."""
        self._closing = True
        for key, window in list(self._windows.items()):
            if window.timer is not None:
                window.timer.cancel()
            self._flush(key)
        if self._running:
            await asyncio.wait(list(self._running), timeout=timeout)
        if self._running:
            message = f"the server shut down before this text was processed (drain timeout {timeout:g} s); send it again"
            for task, requests in list(self._running.items()):
                task.cancel()
                for request in requests:
                    if not request.future.done():
                        self._settle(request, [{"text": job.text, "error": message} for job in request.jobs])
            await asyncio.gather(*self._running, return_exceptions=True)
