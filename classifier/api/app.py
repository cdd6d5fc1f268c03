"""The app factory: one FastAPI app over a backend, its taxonomies and its settings.

The lifespan starts the backend (the engine or the server clients), builds the service
and the batcher on its processor, and on shutdown lets queued and running batches finish
before it closes the backend: a SIGTERM drains, it does not drop.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Mapping

from fastapi import FastAPI

from ..batching import RequestBatcher
from ..llm.base import Processor
from ..service import ClassificationService
from ..settings import Settings
from ..taxonomy import Taxonomy
from . import errors
from .api_router import router
from .metrics import Metrics
from .middleware import BearerAuth, BodyLimit, RequestMetrics
from .protocol import JSONBody
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
            logger.info("ready: backend %s, model %s, taxonomies %s", backend.processor.backend,
                        backend.processor.model, ", ".join(taxonomies))
            try:
                yield
            finally:
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
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=limits.max_texts * limits.max_text_chars * JSON_BYTES_PER_CHAR + BODY_OVERHEAD)
    if limits.api_key:
        app.add_middleware(BearerAuth, api_key=limits.api_key)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=frozenset(r.path for r in app.routes))  # outermost
    return app
