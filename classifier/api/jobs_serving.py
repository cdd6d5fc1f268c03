"""What the jobs routes do: files, batches, their output, summary and report.

Every database call runs in a thread (the store is blocking). A batch's lines are checked
as `POST /classify` would check them when the batch is created, so a bad file fails at
once with the line and what to fix, and the worker later runs them through `Serving`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any, BinaryIO, Callable

from fastapi import HTTPException
from pydantic import ValidationError

from ..batching import Overloaded
from ..capabilities import UnknownCapability, resolve
from ..files import atomic_open
from ..distill import DISTILLED
from ..jobs.inputs import BadInput, read_requests
from ..jobs.store import JobStore, Line
from ..jobs.tables import TERMINAL
from ..jobs.webhooks import WebhookRefused, check_url
from ..jobs.worker import Abandon, LineFailed
from ..report import summarize
from ..report.html import RunInfo, render_report
from ..service import UnknownTaxonomy
from ..settings import JobSettings
from ..taxonomy import Taxonomy
from .jobs_distill import check_distilled, distill_settings
from .protocol import ClassifyRequest, check_limits
from .serving import Serving

logger = logging.getLogger(__name__)
ENDPOINTS = ("/v1/classify", "/classify")
WINDOW = re.compile(r"^(\d+)([hms])$")
UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
MAX_LIST = 100


def _window_seconds(window: object) -> int:
    """OpenAI's "24h"; minutes and seconds ("30m", "90s") work too."""
    match = WINDOW.match(window) if isinstance(window, str) else None
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)] if match else 0
    if not 1 <= seconds <= 30 * 24 * 3600:
        raise HTTPException(422, f"completion_window {window!r}: give a duration up to 30 days like \"24h\"")
    return seconds


class JobsServing:
    def __init__(self, store: JobStore, serving: Serving, settings: JobSettings) -> None:
        self.store, self.serving, self.settings = store, serving, settings

    # ----------------------------------------------------------------- files

    async def upload(self, owner: str, filename: str, purpose: str, content: BinaryIO) -> dict[str, Any]:
        """Store an upload, copied from the request's spooled file a piece at a time."""
        if purpose != "batch":
            raise HTTPException(422, f"purpose {purpose!r}: upload batch input with purpose \"batch\"")
        stored = await asyncio.to_thread(self.store.add_file, owner, filename, purpose, content)
        if not stored["bytes"]:
            await asyncio.to_thread(self.store.delete_file, owner, stored["id"])
            raise HTTPException(422, f"{filename} is empty: upload a JSONL file of requests or a CSV of comments")
        return stored

    async def file(self, owner: str, file_id: str) -> dict[str, Any]:
        found = await asyncio.to_thread(self.store.get_file, owner, file_id)
        if found is None:
            raise HTTPException(404, f"no file {file_id!r}")
        return found

    async def content(self, owner: str, file_id: str) -> Path:
        """Where the file's bytes are, to be streamed from disk."""
        await self.file(owner, file_id)
        return self.store.file_path(file_id)

    async def files(self, owner: str) -> dict[str, Any]:
        return {"object": "list", "data": await asyncio.to_thread(self.store.list_files, owner)}

    async def delete(self, owner: str, file_id: str) -> dict[str, Any]:
        if not await asyncio.to_thread(self.store.delete_file, owner, file_id):
            raise HTTPException(404, f"no file {file_id!r}")
        return {"id": file_id, "object": "file", "deleted": True}

    # ----------------------------------------------------------------- batches

    async def create(self, owner: str, body: dict[str, Any]) -> dict[str, Any]:
        endpoint, window = body.get("endpoint"), body.get("completion_window", "24h")
        if endpoint not in ENDPOINTS:
            raise HTTPException(422, f"endpoint {endpoint!r}: this service runs \"/v1/classify\"")
        seconds = _window_seconds(window)
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise HTTPException(422, "metadata must be an object of strings")
        if metadata.get("webhook_url"):
            try:
                check_url(metadata["webhook_url"], self.settings.webhook_allow)
            except WebhookRefused as exc:
                raise HTTPException(422, str(exc)) from None
        source = await self.file(owner, str(body.get("input_file_id")))
        try:
            lines = await asyncio.to_thread(read_requests, self.store.file_path(source["id"]), source["filename"],
                                            metadata, self.check)
            errors = None
        except BadInput as exc:
            lines, errors = [], exc.errors
        chunk_size = self.settings.chunk_size
        if lines and "route" in metadata:
            self._check_route(metadata, lines)
            chunk_size = len(lines)  # one chunk, held while its phases run (`jobs_distill`)
        queued = await asyncio.to_thread(self.store.queued_lines, owner)
        if lines and queued + len(lines) > self.settings.max_queued_lines:
            raise HTTPException(429, f"{queued} lines are queued for this key and this batch adds {len(lines)}; the "
                                     f"limit is {self.settings.max_queued_lines}: wait for batches to finish")
        return await asyncio.to_thread(self.store.create_batch, owner, source["id"], endpoint, seconds, window,
                                       metadata, lines, chunk_size, errors)

    def _check_route(self, metadata: dict[str, str], lines: list[Line]) -> None:
        """A 422 saying what keeps the batch from the route its metadata names."""
        if metadata["route"] != DISTILLED:
            raise HTTPException(422, f"metadata.route {metadata['route']!r}: jobs know \"{DISTILLED}\" (the LLM "
                                     "answers a sample, models learned from it the rest); leave it out for the LLM")
        try:
            distill_settings(metadata, self.settings.distill)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        problem = check_distilled(lines)
        if problem:
            raise HTTPException(422, problem)

    def check(self, body: dict[str, Any]) -> None:
        """Raise ValueError saying what `POST /classify` would refuse in this body."""
        try:
            request = ClassifyRequest.model_validate(body)
            check_limits(request, self.serving.limits)
            resolve(request.capabilities or ())
            self.serving.service.taxonomy(self.serving.taxonomy_for(request))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        except HTTPException as exc:
            raise ValueError(exc.detail) from None
        except (UnknownCapability, UnknownTaxonomy) as exc:
            raise ValueError(str(exc)) from None

    async def batch(self, owner: str, batch_id: str) -> dict[str, Any]:
        found = await asyncio.to_thread(self.store.get_batch, owner, batch_id)
        if found is None:
            raise HTTPException(404, f"no batch {batch_id!r}")
        return found

    async def batches(self, owner: str, after: str | None, limit: int) -> dict[str, Any]:
        found, more = await asyncio.to_thread(self.store.list_batches, owner, after, max(1, min(limit, MAX_LIST)))
        return {"object": "list", "data": found, "first_id": found[0]["id"] if found else None,
                "last_id": found[-1]["id"] if found else None, "has_more": more}  # fmt: skip

    async def cancel(self, owner: str, batch_id: str) -> dict[str, Any]:
        batch = await self.batch(owner, batch_id)
        if batch["status"] not in ("in_progress", "cancelling"):
            raise HTTPException(409, f"batch {batch_id} is {batch['status']}; only a batch in progress can be cancelled")
        return await asyncio.to_thread(self.store.cancel, owner, batch_id) or batch

    async def summary(self, owner: str, batch_id: str) -> dict[str, Any]:
        batch = await self.batch(owner, batch_id)

        def make() -> str:
            bodies, results = self._results(batch_id)
            return json.dumps(summarize(results, self._taxonomy(bodies)).as_dict())

        counted = json.loads(await asyncio.to_thread(self._once, batch, "summary.json", make))
        return {"batch_id": batch_id, "status": batch["status"], "request_counts": batch["request_counts"], **counted}

    async def report(self, owner: str, batch_id: str) -> str:
        batch = await self.batch(owner, batch_id)

        def make() -> str:
            bodies, results = self._results(batch_id)
            taxonomy = self._taxonomy(bodies)
            capabilities = list(dict.fromkeys(c for body in bodies for c in body["batch_info"]["capabilities_executed"]))
            began, ended = batch["in_progress_at"], batch["completed_at"] or batch["cancelled_at"] or batch["expired_at"]
            run = RunInfo(taxonomy.name, self.serving.processor.model, capabilities,
                          float(ended - began) if began and ended and ended > began else None)
            return render_report(results, taxonomy, run)

        return await asyncio.to_thread(self._once, batch, "report.html", make)

    def _once(self, batch: dict[str, Any], name: str, make: Callable[[], str]) -> str:
        """`make()`, computed once for a batch that ended and kept beside its files (every GET of a
        big batch's summary used to re-read all its lines); each time for a batch still running."""
        if batch["status"] not in TERMINAL:
            return make()
        path = self.store.derived_path(batch["id"], name)
        if path.exists():
            return path.read_text(encoding="utf-8")
        text = make()
        with atomic_open(path) as handle:
            handle.write(text)
        return text

    def _results(self, batch_id: str) -> tuple[list[dict], list[dict]]:
        """The /classify bodies of the batch's lines done, and their per-text results."""
        bodies = [line["response"]["body"] for line in self.store.results(batch_id)]
        return bodies, [result for body in bodies for result in body["results"]]

    def _taxonomy(self, bodies: list[dict[str, Any]]) -> Taxonomy:
        """The taxonomy the batch's lines ran against (its first line's; the default before any ran)."""
        return self.serving.service.taxonomy(bodies[0]["config_used"] if bodies else None)

    # ----------------------------------------------------------------- the worker's classify

    async def classify_line(self, body: dict[str, Any], route: str | None = None) -> dict[str, Any]:
        """One line through `POST /classify`'s path (on `route`, for a distilled job's lines past
        its sample); a full queue is waited out, not failed."""
        try:
            request = ClassifyRequest.model_validate(body)
        except ValidationError as exc:
            raise LineFailed(422, str(exc.errors()[0]["msg"])) from None
        while True:
            try:
                return await self.serving.classify(request, background=True, route=route)
            except Overloaded as exc:
                if self.serving.batcher.closing:
                    raise Abandon() from None  # the chunk goes back to the queue, whole
                await asyncio.sleep(exc.retry_after)
            except HTTPException as exc:
                raise LineFailed(exc.status_code, str(exc.detail)) from None
            except (UnknownCapability, UnknownTaxonomy) as exc:
                raise LineFailed(422, str(exc)) from None
            except Exception:  # noqa: BLE001 - a bug fails the line, never the chunk
                logger.exception("a job line failed")
                raise LineFailed(500, "internal error; the server log has the details") from None
