"""The jobs routes, in the shape of OpenAI's Files and Batches APIs (the `openai` client
drives them unchanged), plus a batch's summary and HTML report. Thin: `JobsServing` acts."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, UploadFile
from starlette.responses import FileResponse, HTMLResponse, Response

from .jobs_serving import JobsServing
from .middleware import OwnerDep
from .protocol import JSONBody

router = APIRouter(prefix="/v1", tags=["jobs"])


async def _jobs(request: Request) -> JobsServing:
    return request.app.state.jobs


JobsDep = Annotated[JobsServing, Depends(_jobs)]


@router.post("/files")
async def upload(jobs: JobsDep, owner: OwnerDep, file: Annotated[UploadFile, File()],
                 purpose: Annotated[str, Form()] = "batch") -> Response:
    """Upload a batch input: JSONL requests or a CSV of comments."""
    return JSONBody(await jobs.upload(owner, file.filename or "upload", purpose, file.file))


@router.get("/files")
async def files(jobs: JobsDep, owner: OwnerDep) -> Response:
    return JSONBody(await jobs.files(owner))


@router.get("/files/{file_id}")
async def file(file_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    return JSONBody(await jobs.file(owner, file_id))


@router.get("/files/{file_id}/content")
async def content(file_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    """The file's bytes: an input as uploaded, or a batch's output or error JSONL."""
    return FileResponse(await jobs.content(owner, file_id), media_type="application/octet-stream")


@router.delete("/files/{file_id}")
async def delete(file_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    return JSONBody(await jobs.delete(owner, file_id))


@router.post("/batches")
async def create(body: Annotated[dict[str, Any], Body()], jobs: JobsDep, owner: OwnerDep) -> Response:
    """Start a batch over an uploaded file: `{input_file_id, endpoint: "/v1/classify", completion_window, metadata}`."""
    return JSONBody(await jobs.create(owner, body))


@router.get("/batches")
async def batches(jobs: JobsDep, owner: OwnerDep, after: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Response:
    return JSONBody(await jobs.batches(owner, after, limit))


@router.get("/batches/{batch_id}")
async def batch(batch_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    return JSONBody(await jobs.batch(owner, batch_id))


@router.post("/batches/{batch_id}/cancel")
async def cancel(batch_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    """Stop at the next chunk boundary; the lines done are kept in the output."""
    return JSONBody(await jobs.cancel(owner, batch_id))


@router.get("/batches/{batch_id}/summary")
async def summary(batch_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    """Counts per topic path, polarity mix per stem, alerts by type and severity, errors."""
    return JSONBody(await jobs.summary(owner, batch_id))


@router.get("/batches/{batch_id}/report", response_class=HTMLResponse)
async def report(batch_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    """The HTML report of the lines done so far."""
    return HTMLResponse(await jobs.report(owner, batch_id))
