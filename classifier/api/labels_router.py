"""The gold routes: corrections in (`POST /v1/labels`), listing and deletion. Thin: `LabelsServing` acts."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.responses import Response

from .jobs_router import OwnerDep
from .labels_serving import LabelsServing
from .protocol import JSONBody

router = APIRouter(prefix="/v1", tags=["labels"])


async def _labels(request: Request) -> LabelsServing:
    return request.app.state.labels


LabelsDep = Annotated[LabelsServing, Depends(_labels)]


@router.post("/labels")
async def label(body: Annotated[dict[str, Any], Body()], labels: LabelsDep, owner: OwnerDep) -> Response:
    """A correction: `{"text", "paths": ["Food>Quality"], "polarity"?: {...}, "taxonomy"?}`; idempotent per text."""
    return JSONBody(await labels.label(owner, body))


@router.get("/labels")
async def listing(labels: LabelsDep, taxonomy: str | None = None, after: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    return JSONBody(await labels.labels(taxonomy, after, limit))


@router.delete("/labels/{label_id}")
async def delete(label_id: str, labels: LabelsDep, taxonomy: str | None = None) -> Response:
    return JSONBody(await labels.delete(taxonomy, label_id))
