"""The job worker: claims a chunk, classifies its lines, commits them, and closes batches.

Lines of a chunk go through the same classify path as `POST /classify` (the request
batcher), all at once, so a job's lines share engine batches with each other and with
live traffic. The lease is renewed while a chunk runs; a chunk whose lease was lost (this
worker stalled past it and another took over) is discarded, never written twice. Beside
the chunks, each worker sends the webhook notices waiting in the outbox.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

import httpx

from ..distill import DISTILLED
from ..llm.fairness import Requester, requester
from ..settings import JobSettings
from .held import Outputs
from .store import Claim, JobStore, Line
from . import outbox
from .retention import purge
from .webhooks import TIMEOUT_S, send

logger = logging.getLogger(__name__)
PURGE_EVERY_S = 3600.0  # how often a worker deletes what is past the retention


@dataclass
class LineFailed(Exception):
    """A line's request failed as a whole: its HTTP status and what to fix."""

    status_code: int
    message: str


class Abandon(Exception):
    """Give the chunk back undone (the server is shutting down): another run takes it whole."""


# A /classify body (and the route its texts take; None: the service's) -> its response, or LineFailed.
Classify = Callable[[dict[str, Any], "str | None"], Awaitable[dict[str, Any]]]
Observe = Callable[[float], None]
# Lines of a held chunk to answer on a route; their outputs once kept in the store.
AnswerLines = Callable[[Sequence[Line], "str | None"], Awaitable[Outputs]]
# A distilled job's chunk (`classifier.api.jobs_distill`): given the lines kept before, answers the
# rest through `AnswerLines` in phases, reporting each (`JobStore.show_progress`'s body).
Distill = Callable[[Claim, Outputs, AnswerLines, Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class Halted(Exception):
    """A held chunk must stop: its lease went to another worker, or its batch was cancelled or expired."""


class JobWorker:
    def __init__(self, store: JobStore, classify: Classify, settings: JobSettings,
                 observe_chunk: Observe = lambda seconds: None, distill: Distill | None = None) -> None:
        self.store, self.classify, self.settings, self.observe_chunk = store, classify, settings, observe_chunk
        self.distill = distill  # None: a distilled job's chunk is answered as any other
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Work until `stop()`: close what is finished, else take the next chunk, else wait;
        the outbox's notices are sent beside, by their own loop."""
        notices = asyncio.create_task(self._send_notices())
        try:
            await self._work_chunks()
        finally:
            notices.cancel()
            await asyncio.gather(notices, return_exceptions=True)

    async def _work_chunks(self) -> None:
        purged = 0.0
        while not self._stopping.is_set():
            try:
                await self._finish_batches()
                if time.monotonic() - purged > PURGE_EVERY_S:
                    await asyncio.to_thread(purge, self.store, self.settings.retention_days)
                    purged = time.monotonic()
                claim = await asyncio.to_thread(self.store.claim, self.id, self.settings.lease_seconds)
                if claim is not None:
                    await self._work(claim)
                    continue
            except Abandon:
                return
            except Exception:  # a database hiccup must not end the worker; the lease protects the work
                logger.exception("job worker %s: retrying after an error", self.id)
            try:
                await asyncio.wait_for(self._stopping.wait(), self.settings.poll_seconds)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        """Take no new chunk and send no new notice; the caller cancels `run` if the chunk in
        hand takes too long (a notice cut short is sent again by whoever looks next)."""
        self._stopping.set()

    async def _work(self, claim: Claim) -> None:
        # Its lines take turns with other requests as one, and are answered from its owner's labels.
        requester.set(Requester(f"job {claim.batch_id}", owner=claim.owner))
        started = time.perf_counter()
        heartbeat = asyncio.create_task(self._keep_lease(claim))
        done: Outputs | None = None
        try:
            if claim.route == DISTILLED and self.distill is not None:
                await self._distilled(claim)
                done = {}  # every line is kept already
            else:
                outputs = await asyncio.gather(*(self._line(line) for line in claim.lines))
                done = {line.line_no: output for line, output in zip(claim.lines, outputs)}
        except (Abandon, asyncio.CancelledError):
            await asyncio.shield(asyncio.to_thread(self.store.release, claim, self.id))
            raise
        except Halted:  # `done` stays None; given back (if still held) for the batch to close
            await asyncio.shield(asyncio.to_thread(self.store.release, claim, self.id))
        finally:
            heartbeat.cancel()
        if done is None:
            logger.info("chunk %d of %s stopped: its batch ended or its lease was lost", claim.chunk_no, claim.batch_id)
        elif await asyncio.to_thread(self.store.complete, claim, self.id, done):
            self.observe_chunk(time.perf_counter() - started)
        else:
            logger.warning("chunk %d of %s: lease lost, its results are left to the worker that took it over",
                           claim.chunk_no, claim.batch_id)

    async def _distilled(self, claim: Claim) -> None:
        """A distilled job's one chunk: its lines kept as each phase answers them, so a worker
        that dies midway loses nothing the LLM answered."""
        assert self.distill is not None

        async def answer(lines: Sequence[Line], route: str | None) -> Outputs:
            outputs = await asyncio.gather(*(self._line(line, route) for line in lines))
            done = {line.line_no: output for line, output in zip(lines, outputs)}
            if not await asyncio.to_thread(self.store.keep, claim, self.id, done):
                raise Halted()
            return done

        async def show(progress: dict[str, Any]) -> None:
            await asyncio.to_thread(self.store.show_progress, claim.batch_id, progress)

        await self.distill(claim, await asyncio.to_thread(self.store.kept, claim), answer, show)

    async def _keep_lease(self, claim: Claim) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            await asyncio.to_thread(self.store.extend, claim, self.id, self.settings.lease_seconds)

    async def _line(self, line: Line, route: str | None = None) -> tuple[str | None, str | None]:
        """(output line, None) or (None, error line), as the output and error files hold them."""
        request_id = f"req_{uuid.uuid4().hex}"
        base = {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": line.custom_id}
        try:
            body = await self.classify(line.body, route)
        except LineFailed as exc:
            # The request itself rides along, so the error file can be submitted again as it is.
            failed = {**base, "method": "POST", "url": "/v1/classify", "body": line.body,
                      "response": {"status_code": exc.status_code, "request_id": request_id,
                                   "body": {"detail": exc.message}},
                      "error": {"code": str(exc.status_code), "message": exc.message}}  # fmt: skip
            return None, json.dumps(failed, ensure_ascii=False)
        done = {**base, "response": {"status_code": 200, "request_id": request_id, "body": body}, "error": None}
        return json.dumps(done, ensure_ascii=False), None

    async def _finish_batches(self) -> None:
        for batch_id, final in await asyncio.to_thread(self.store.to_finish, self.settings.lease_seconds):
            if not await asyncio.to_thread(self.store.begin_finalizing, batch_id, final, self.settings.lease_seconds):
                continue
            batch = await asyncio.to_thread(self.store.finish, batch_id, final)
            logger.info("batch %s %s: %s", batch_id, final, batch["request_counts"])

    async def _send_notices(self) -> None:
        """Send what the outbox holds, one attempt at a time, until stopped."""
        settings = self.settings
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            while not self._stopping.is_set():
                try:
                    notice = await asyncio.to_thread(outbox.take, self.store.engine)
                    if notice is not None:
                        delivered, attempt = await send(client, notice, settings.webhook_secret)
                        await asyncio.to_thread(self.store.record_webhook, notice.batch_id, attempt)
                        state = await asyncio.to_thread(outbox.settle, self.store.engine, notice, delivered,
                                                        attempts=settings.webhook_attempts,
                                                        backoff=settings.webhook_backoff)
                        if state == "given_up":
                            logger.warning("webhook %s to %s given up after %d attempts", notice.id, notice.url,
                                           notice.attempt)
                        continue
                except Exception:  # a database hiccup must not end the loop; the lease frees the notice
                    logger.exception("job worker %s: webhook loop retrying after an error", self.id)
                try:
                    await asyncio.wait_for(self._stopping.wait(), settings.poll_seconds)
                except TimeoutError:
                    pass
