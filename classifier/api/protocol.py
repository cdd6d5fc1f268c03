"""The wire models of the HTTP face, in one place, and the checks a request must pass.

Request fields and response keys follow the prototype (DESIGN.md), so its clients parse
our answers unchanged. Results are plain objects whose keys depend on the capabilities
asked for; the capability outputs themselves are documented in `classifier.outputs`.
"""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import HTTPException
from pydantic import BaseModel, Field, StrictStr
from starlette.responses import Response

from ..capabilities import CAPABILITIES, DEFAULT_CAPABILITIES
from ..settings import ServerSettings

EXAMPLE_REQUEST = {"texts": ["The trainer rushed the last module", "Lunch was cold"],
                   "capabilities": ["classification", "stem_polarity"]}
EXAMPLE_JSON = orjson.dumps(EXAMPLE_REQUEST).decode()


class JSONBody(Response):
    """A JSON response serialised by orjson (several times faster than the stdlib's)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ClassifyRequest(BaseModel):
    model_config = {"json_schema_extra": {"examples": [EXAMPLE_REQUEST]}}

    texts: list[StrictStr] = Field(description="The comments to classify; one result each, in this order.")
    capabilities: list[StrictStr] | None = Field(
        default=list(DEFAULT_CAPABILITIES),
        description=f"Any of: {', '.join(CAPABILITIES)}. The stem_* ones pull in classification.",
    )
    project_name: StrictStr | None = Field(
        default=None, max_length=200, description="Replaces the taxonomy root's name as the path prefix."
    )
    taxonomy: StrictStr | None = Field(
        default=None, description="Name of a taxonomy the server loaded at start (see /capabilities); default: --config."
    )
    summary: bool = Field(
        default=False, description="Add `summary`: counts per path, polarity mix per stem, alerts by severity, ..."
    )
    config_path: StrictStr | None = Field(
        default=None,
        description="The prototype's way to pick a taxonomy: the path of a file the server loaded at start "
        "(matched by path or file name, never opened).",
    )


class LabelRequest(BaseModel):
    """A correction (`POST /v1/labels`): the comment and the paths it should get."""

    model_config = {"extra": "forbid"}

    text: StrictStr = Field(description="The comment, as it was (or will be) sent to /classify.")
    paths: list[StrictStr] = Field(description='Its complete stems, e.g. ["Food>Quality"]; [] for none of the topics.')
    polarity: dict[StrictStr, StrictStr] = Field(
        default_factory=dict, description="Per path: Positive, Negative, Neutral or Mixed.")
    taxonomy: StrictStr | None = Field(default=None, description="A taxonomy the server loaded; default: --config.")


class BatchInfo(BaseModel):
    text_count: int
    capabilities_executed: list[str]


class ClassifyResponse(BaseModel):
    results: list[dict[str, Any]] = Field(
        description="Per text: `text`, one key per capability (classification_result, recommendations, "
        "alerts, trends, stem_polarity, stem_recommendations, stem_trends) and `error` where a part failed."
    )
    processing_time: float
    batch_info: BatchInfo
    config_used: str
    summary: dict[str, Any] | None = Field(default=None, description="Only when the request asked for it.")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong and what to send instead.")
    error: dict[str, Any] = Field(description="The same as OpenAI's clients read it: {message, type, code}.")


def error_body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """Every error's body: the prototype's `detail`, and OpenAI's `error` object, whose
    message the `openai` client shows (the jobs API is driven by it)."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"detail": detail, "error": {"message": detail, "type": kind, "code": status}, **extra}


class HealthResponse(BaseModel):
    status: str = Field(description="healthy: the service is up (liveness; readiness is GET /ready).")
    processor_loaded: bool = Field(description="The LLM backend is up as far as the server knows, without asking it.")
    gpu_count: int
    capabilities_available: list[str]
    requests_processed: int
    uptime_seconds: float
    default_config: str | None = Field(description="The default taxonomy's file.")
    backend: str
    model: str
    gpus: list[dict[str, Any]]
    detail: dict[str, Any]


class ReadyResponse(BaseModel):
    status: str = Field(description="ready, or unavailable when the LLM backend does not answer (HTTP 503).")
    backend: str
    model: str
    detail: dict[str, Any]
    gold: dict[str, Any] | None = Field(
        default=None, description="Per taxonomy: owners' labels loaded, loading, and any that failed to load, with why.")


def check_limits(request: ClassifyRequest, limits: ServerSettings) -> None:
    """Reject what the model types cannot: no texts, too many, too long. 422/413 say what to fix."""
    count = len(request.texts)
    if not count:
        raise HTTPException(422, f"texts is empty: send at least one text, e.g. {EXAMPLE_JSON}")
    if count > limits.max_texts:
        raise HTTPException(
            413, f"{count} texts in one request; the limit is {limits.max_texts}: split them over several requests"
        )
    too_long = [i for i, text in enumerate(request.texts) if len(text) > limits.max_text_chars]
    if too_long:
        first = too_long[0]
        more = f" (and {len(too_long) - 1} more)" if len(too_long) > 1 else ""
        raise HTTPException(
            413,
            f"texts[{first}] has {len(request.texts[first])} characters{more}; the limit is "
            f"{limits.max_text_chars} per text: shorten or split it",
        )
