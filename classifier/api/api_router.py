"""The HTTP routes: each reads the request, calls `Serving`, and answers. Nothing else."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from .protocol import ClassifyRequest, ClassifyResponse, ErrorResponse, HealthResponse, JSONBody
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


@router.post("/classify", response_model=ClassifyResponse, responses=ERRORS)
async def classify(body: ClassifyRequest, serving: ServingDep) -> Response:
    """Classify texts with the capabilities asked for; one result per text, in order."""
    return JSONBody(await serving.classify(body))


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(serving: ServingDep) -> Response:
    """Liveness, backend, model and GPUs; 503 when the LLM backend does not answer. Needs no API key."""
    body = await serving.health()
    return JSONBody(body, status_code=200 if body["status"] == "ok" else 503)


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
    """Prometheus text format."""
    return Response(serving.metrics.render(), media_type=CONTENT_TYPE_LATEST)
