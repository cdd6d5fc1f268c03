"""The gold routes: corrections in (`POST /v1/labels`), listing and deletion, each on the
caller's own labels. Thin: `LabelsServing` acts."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from .labels_serving import LabelsServing
from .middleware import OwnerDep
from .protocol import JSONBody, LabelRequest

router = APIRouter(prefix="/v1", tags=["labels"])


async def _labels(request: Request) -> LabelsServing:
    return request.app.state.labels


LabelsDep = Annotated[LabelsServing, Depends(_labels)]


@router.post("/labels")
async def label(body: LabelRequest, labels: LabelsDep, owner: OwnerDep) -> Response:
    """A correction: `{"text", "paths": ["Food>Quality"], "polarity"?: {...}, "taxonomy"?}`; idempotent per text."""
    return JSONBody(await labels.label(owner, body))


@router.get("/labels")
async def listing(labels: LabelsDep, owner: OwnerDep, taxonomy: str | None = None, after: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """Your labels and the operator's (`shared`), by id."""
    return JSONBody(await labels.labels(owner, taxonomy, after, limit))


@router.delete("/labels/{label_id}")
async def delete(label_id: str, labels: LabelsDep, owner: OwnerDep, taxonomy: str | None = None) -> Response:
    return JSONBody(await labels.delete(owner, taxonomy, label_id))
