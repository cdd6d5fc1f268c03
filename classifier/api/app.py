"""The app factory: one FastAPI app over a backend, its taxonomies and its settings.

The lifespan starts the backend (the engine or the server clients), builds the service
and the batcher on its processor, and on shutdown lets queued and running batches finish
before it closes the backend: a SIGTERM drains, it does not drop.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Mapping

from fastapi import FastAPI

from ..batching import RequestBatcher
from ..gold.embedder import Embedder
from ..gold.store import GoldStore
from ..gold.training import Learning
from ..jobs.store import JobStore
from ..jobs.worker import JobWorker
from ..llm.base import Processor
from ..service import ClassificationService
from ..settings import Settings
from ..taxonomy import Taxonomy
from ..warmup import WarmUp, fixed_prompts
from . import errors
from .api_router import router
from .jobs_router import router as jobs_router
from .labels_router import router as labels_router
from .jobs_distill import JobDistiller
from .jobs_serving import JobsServing
from .labels_serving import LabelsServing
from .metrics import Metrics
from .middleware import BearerAuth, BodyLimit, RequestMetrics
from .protocol import JSONBody
from .rate_limits import RateLimit, parse_limits
from .serving import Backend, Serving

logger = logging.getLogger(__name__)
JSON_BYTES_PER_CHAR = 6  # worst case: every character written as a \uXXXX escape
BODY_OVERHEAD = 1 << 20


class FixedBackend:
    """A `Backend` around a processor that is already running (tests, benchmarks)."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await self.processor.close()

    gpu_count = 0

    def gpu_memory(self) -> list[dict[str, Any]]:
        return []


@asynccontextmanager
async def _jobs(app: FastAPI, settings: Settings, metrics: Metrics) -> AsyncIterator[None]:
    """The jobs store and, unless --no-jobs, a worker on this process's backend. On the way
    out the worker takes no new chunk and gets the drain timeout to finish the one it has;
    a chunk it cannot finish goes back to the queue whole."""
    if settings.jobs is None:
        yield
        return
    store = await asyncio.to_thread(JobStore, settings.jobs.url, settings.jobs.data_dir)
    app.state.jobs = jobs = JobsServing(store, app.state.serving, settings.jobs)
    metrics.watch_jobs(store)
    service = app.state.serving.service
    embedder = Embedder.for_data(settings.jobs.data_dir, settings.engine.cache_dir)
    learning = Learning(GoldStore(store.engine), service.taxonomies, service.knowledge, embedder,
                        settings.jobs.data_dir / "learned",
                        settings.jobs.retrain_after, settings.jobs.retrain_interval, settings.jobs.max_labels,
                        service.flag_knowledge)
    app.state.labels = LabelsServing(learning.store, service, learning, settings.server.max_text_chars)
    app.state.serving.gold = learning.status
    loading = asyncio.create_task(learning.start())  # the gold is read while the server already answers
    worker, running = None, None
    if settings.jobs.enabled:
        distiller = JobDistiller(app.state.serving, embedder, settings.jobs.distill, settings.jobs.chunk_size)
        worker = JobWorker(store, jobs.classify_line, settings.jobs, metrics.chunk_latency.observe, distiller)
        running = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        if worker is not None and running is not None:
            await worker.stop()
            try:
                await asyncio.wait_for(running, settings.server.drain_timeout)
            except TimeoutError:
                pass  # wait_for cancelled it: its chunk was given back
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
        await learning.close()
        await asyncio.to_thread(store.close)


def _warm_up(serving: Serving, settings: Settings, taxonomies: Mapping[str, Taxonomy]) -> asyncio.Task[None] | None:
    """The warm-up of the prefix cache, started in the background where the settings ask for one."""
    wanted = settings.server.warm_up
    if not (wanted or (wanted is None and serving.processor.backend == "local")):
        return None
    serving.warm_up = WarmUp(fixed_prompts(taxonomies, settings.classifier))
    return asyncio.create_task(serving.warm_up.run(serving.processor, idle=lambda: not serving.batcher.queued_texts))


def create_app(
    settings: Settings,
    taxonomies: Mapping[str, Taxonomy],
    backend: Backend,
    *,
    default_taxonomy: str | None = None,
) -> FastAPI:
    """The service's HTTP face; nothing starts until the lifespan runs (uvicorn or a test)."""
    limits = settings.server
    if not taxonomies:
        raise ValueError("the server needs at least one taxonomy")
    if limits.max_texts > limits.max_queued_texts:
        raise ValueError(
            f"max texts per request ({limits.max_texts}) exceeds the queue bound ({limits.max_queued_texts}): "
            "such a request could never be admitted"
        )
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        try:
            service = ClassificationService(backend.processor, taxonomies, settings.classifier, default_taxonomy)
            batcher = RequestBatcher(service, window=limits.batch_timeout, max_queued_texts=limits.max_queued_texts)
            app.state.serving = Serving(service, batcher, backend, metrics, limits)
            metrics.watch(app.state.serving)
            warming = _warm_up(app.state.serving, settings, taxonomies)
            logger.info("ready: backend %s, model %s, taxonomies %s", backend.processor.backend,
                        backend.processor.model, ", ".join(taxonomies))
            try:
                async with _jobs(app, settings, metrics):
                    yield
            finally:
                if warming is not None:
                    warming.cancel()
                    await asyncio.gather(warming, return_exceptions=True)
                await batcher.close()
        finally:
            await backend.close()

    app = FastAPI(
        title="LLM topic classifier",
        summary="Topics, recommendations, alerts, polarity and trends for free-text comments",
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    app.include_router(router)
    if settings.jobs is not None:
        app.include_router(jobs_router)
        app.include_router(labels_router)
    errors.install(app)
    # The request limit, but never more than the largest request the text limits admit.
    largest = limits.max_texts * limits.max_text_chars * JSON_BYTES_PER_CHAR + BODY_OVERHEAD
    app.add_middleware(BodyLimit, max_bytes=min(limits.max_body_bytes, largest),
                       max_upload_bytes=limits.max_upload_bytes, max_in_flight=limits.max_bodies_in_flight_bytes)
    if limits.rate_limits:  # inside BearerAuth, which says whose request it is
        app.add_middleware(RateLimit, limits=parse_limits(limits.rate_limits), metrics=metrics)
    if limits.api_keys:
        app.add_middleware(BearerAuth, api_keys=limits.api_keys)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=frozenset(r.path for r in app.routes))  # outermost
    return app
