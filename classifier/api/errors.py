"""Every error the HTTP face answers, as `{"detail": "...", "error": {...}}` saying what to fix.

FastAPI's own validation answer is a list of pydantic errors with status 422 for
everything; clients of the prototype get one sentence instead, and a status that says
which kind of mistake it was: 400 not JSON, 415 not sent as JSON, 422 wrong fields.
"""
from __future__ import annotations

import logging
import uuid
from email.message import Message
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from ..batching import Overloaded
from ..capabilities import UnknownCapability
from ..service import UnknownTaxonomy
from .protocol import EXAMPLE_JSON, JSONBody, error_body

MAX_LISTED_ERRORS = 5
logger = logging.getLogger(__name__)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _where(loc: tuple[Any, ...]) -> str:
    """("body", "texts", 2) -> "texts[2]"."""
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def describe_validation(request: Request, exc: RequestValidationError) -> tuple[int, str]:
    """Status and one message for a request FastAPI could not turn into its model."""
    content_type = request.headers.get("content-type")
    # The body as a whole could not be read as the route's JSON model (form fields and query
    # parameters are named one by one below, whatever the content type).
    unread_body = any(tuple(e["loc"]) == ("body",) for e in exc.errors())
    if unread_body and not _is_json(content_type):
        return 415, f"send the body as JSON with the header Content-Type: application/json (got {content_type or 'none'})"
    errors = exc.errors()
    invalid = next((e for e in errors if e["type"] == "json_invalid"), None)
    if invalid is not None:
        reason = invalid.get("ctx", {}).get("error", "JSON decode error")
        return 400, f"the body is not valid JSON ({reason} at character {invalid['loc'][-1]}); send e.g. {EXAMPLE_JSON}"
    if any(e["type"] == "missing" and tuple(e["loc"]) == ("body",) for e in errors):
        return 422, f"the body is empty; send e.g. {EXAMPLE_JSON}"
    listed = "; ".join(f"{_where(tuple(e['loc']))}: {e['msg']}" for e in errors[:MAX_LISTED_ERRORS])
    more = f" (and {len(errors) - MAX_LISTED_ERRORS} more)" if len(errors) > MAX_LISTED_ERRORS else ""
    example = f"; expected e.g. {EXAMPLE_JSON}" if _is_json(content_type) else ""
    return 422, f"{listed}{more}{example}"


async def _validation(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, RequestValidationError)
    status, detail = describe_validation(request, exc)
    return JSONBody(error_body(status, detail), status_code=status)


async def _unknown_name(request: Request, exc: Exception) -> JSONBody:
    return JSONBody(error_body(422, str(exc)), status_code=422)


async def _overloaded(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, Overloaded)
    return JSONBody(error_body(503, str(exc)), status_code=503, headers={"Retry-After": str(exc.retry_after)})


async def _http(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, HTTPException)
    return JSONBody(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONBody:
    """A bug answers 500 with a request id and nothing of the exception (its text may hold
    data or internals); the log has the traceback under the same id."""
    request_id = uuid.uuid4().hex[:16]
    logger.error("internal error on %s %s, request id %s", request.method, request.url.path, request_id,
                 exc_info=exc)
    return JSONBody(error_body(500, f"internal error, logged with request id {request_id}; the server keeps running",
                               request_id=request_id), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(UnknownCapability, _unknown_name)
    app.add_exception_handler(UnknownTaxonomy, _unknown_name)
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(Exception, _unexpected)
