"""The HTTP routes: each reads the request, calls `Serving`, and answers. Nothing else."""
from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from .middleware import OwnerDep
from .protocol import ClassifyRequest, ClassifyResponse, ErrorResponse, HealthResponse, JSONBody, ReadyResponse
from .serving import Serving

router = APIRouter()


async def _serving(request: Request) -> Serving:
    """Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, per request."""
    return request.app.state.serving


ServingDep = Annotated[Serving, Depends(_serving)]
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": what}
    for status, what in {
        400: "The body is not valid JSON",
        401: "API key missing or wrong (only when the server has one)",
        413: "Too many texts, a text too long, or a body too large",
        415: "The body was not sent as application/json",
        422: "A field is wrong: empty texts, a non-string item, an unknown capability or taxonomy",
        503: "Too many texts queued, or shutting down; see Retry-After",
    }.items()
}


@router.get("/")
async def root(serving: ServingDep) -> Response:
    """Service name, version and endpoints, as the prototype answers."""
    return JSONBody(serving.root())


@router.post("/classify", response_model=ClassifyResponse, responses=ERRORS)
@router.post("/v1/classify", response_model=ClassifyResponse, responses=ERRORS, include_in_schema=False)
async def classify(body: ClassifyRequest, serving: ServingDep, owner: OwnerDep) -> Response:
    """Classify texts with the capabilities asked for; one result per text, in order."""
    return JSONBody(await serving.classify(body, owner=owner))


@router.get("/health", response_model=HealthResponse)
async def health(serving: ServingDep) -> Response:
    """Liveness with the prototype's fields; never calls the LLM. Needs no API key."""
    return JSONBody(await serving.health())


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(serving: ServingDep) -> Response:
    """Readiness: 200 when the LLM backend answers now, else 503 with the reason. Needs no API key."""
    body = await serving.ready()
    return JSONBody(body, status_code=200 if body["status"] == "ready" else 503)


@router.get("/capabilities")
async def capabilities(serving: ServingDep) -> Response:
    """The capability names a request may ask for, and the taxonomies loaded at start."""
    return JSONBody(serving.capabilities())


@router.get("/stats")
async def stats(serving: ServingDep) -> Response:
    """Counters since start: requests, texts, coalesced batches, LLM calls and tokens."""
    return JSONBody(serving.stats())


@router.get("/metrics")
async def metrics(serving: ServingDep) -> Response:
    """Prometheus text format (rendered off the event loop: the jobs' counts are database queries)."""
    return Response(await asyncio.to_thread(serving.metrics.render), media_type=CONTENT_TYPE_LATEST)
