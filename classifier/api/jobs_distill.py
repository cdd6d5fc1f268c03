"""A distilled job (`metadata.route: "distilled"`): `classifier.distill`'s route over a job's lines.

Each line is one comment, and all name the same taxonomy, project and capabilities (checked
when the batch is created, `check_distilled`). The job is one chunk: the worker holds it
while the phases run (`JobWorker._distilled`), and its lines are kept as each phase answers
them, so a worker that dies midway loses nothing the LLM answered and the next one asks only
for the rest. The models the sample teaches answer this job alone: they live under a key of
the job's own, never beside its owner's labels, and are dropped when the job's phases end.
The batch object's `distilled` field shows the phase and who answered how many comments.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Any, Awaitable, Callable, Iterator, Mapping, Sequence

from ..capabilities import DEFAULT_CAPABILITIES, resolve
from ..distill.route import distill, shares
from ..gold.embedder import Embedder
from ..jobs.held import Claim, Line, Outputs
from ..jobs.worker import AnswerLines
from ..llm.fairness import requester
from ..settings import DistillSettings
from .protocol import ClassifyRequest
from .serving import Serving

# metadata key -> DistillSettings field, as batch_classify.py's --distill-* flags name them
METADATA = {"distill_sample": "sample", "distill_floor": "floor", "distill_min_comments": "min_comments",
            "distill_labels": "labels"}


def distill_settings(metadata: Mapping[str, str], base: DistillSettings) -> DistillSettings:
    """The job's settings: the server's, with the metadata's `distill_*` values; ValueError
    says which value is wrong."""
    given: dict[str, Any] = {}
    for key, name in METADATA.items():
        if key not in metadata:
            continue
        value = metadata[key]
        try:
            given[name] = value if name == "labels" else (float if name == "sample" else int)(value)
        except ValueError:
            raise ValueError(f"metadata.{key} {value!r} is not a number") from None
        if name == "labels" and value not in ("all", "sure"):
            raise ValueError(f"metadata.{key} {value!r}: give all or sure")
        if name != "labels" and given[name] < 0:
            raise ValueError(f"metadata.{key} {value!r}: give a number >= 0")
    return replace(base, **given)


def check_distilled(lines: Sequence[Line]) -> str | None:
    """What keeps these lines from going the distilled route, if anything: each must hold one
    comment, and all must ask the same of the same taxonomy (the sample teaches one set of models)."""
    first = None
    for line in lines:
        request = ClassifyRequest.model_validate(line.body)
        if len(request.texts) != 1:
            return (f"line {line.line_no}: a distilled job takes one comment per line, this one holds "
                    f"{len(request.texts)}: split it, or upload a CSV of comments")
        asks = (request.taxonomy, request.config_path, request.project_name, request.capabilities)
        if first is None:
            first = asks
        elif asks != first:
            return (f"line {line.line_no}: a distilled job's lines must all name the same taxonomy, project_name "
                    "and capabilities as the first; send the others as a job of their own")
    return None


class JobDistiller:
    """The worker's `Distill`: the route's phases over a held chunk's lines."""

    def __init__(self, serving: Serving, embedder: Embedder, settings: DistillSettings, chunk_size: int) -> None:
        self.serving, self.embedder, self.settings, self.chunk_size = serving, embedder, settings, chunk_size

    async def __call__(self, claim: Claim, kept: Outputs, answer_lines: AnswerLines,
                       show: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        service = self.serving.service
        request = ClassifyRequest.model_validate(claim.lines[0].body)
        taxonomy = service.taxonomy(self.serving.taxonomy_for(request))
        capabilities = resolve(request.capabilities or DEFAULT_CAPABILITIES)
        lines = {line.line_no: line for line in claim.lines}
        texts = {line.line_no: ClassifyRequest.model_validate(line.body).texts[0] for line in claim.lines}
        results = {line_no: _result(*pair) for line_no, pair in kept.items()}
        key = f"job {claim.batch_id}"  # whose learned models answer past the sample: this job's alone
        now = {"phase": "", "detail": ""}

        def progress(**more: Any) -> dict[str, Any]:
            return {**now, "comments": len(texts), "answered_by": dict(shares(list(results.values()))), **more}

        def on_phase(phase: str, detail: str) -> None:
            now.update(phase=phase, detail=detail)

        async def answer(rows: Sequence[int], phase: str, route: str | None) -> None:
            await show(progress())
            with _as_owner(key if route is not None else None):
                for start in range(0, len(rows), self.chunk_size):
                    done = await answer_lines([lines[row] for row in rows[start: start + self.chunk_size]], route)
                    results.update({line_no: _result(*pair) for line_no, pair in done.items()})
                    await show(progress())

        settings = distill_settings(claim.metadata, self.settings)
        try:
            report = await distill(service, self.embedder, taxonomy, texts, results, capabilities, settings, answer,
                                   prefix=request.project_name, owner=key, on_phase=on_phase)
        finally:
            service.knowledge.pop((taxonomy.name, key), None)
            service.flag_knowledge.pop(key, None)
        now.update(phase="done", detail=report.llm_only)
        await show(progress(**{k: v for k, v in asdict(report).items() if k not in ("comments", "llm_only")}))


def _result(output: str | None, error: str | None) -> dict[str, Any]:
    """A kept line's one result, as `distill` reads results (a failed line: `error`, asked again)."""
    if output is None:
        return {"error": json.loads(error or "{}").get("error", {}).get("message", "failed")}
    return json.loads(output)["response"]["body"]["results"][0]


@contextmanager
def _as_owner(key: str | None) -> Iterator[None]:
    """Lines classified here are answered from `key`'s models (None: the job owner's, as set)."""
    if key is None:
        yield
        return
    token = requester.set(replace(requester.get(), owner=key))
    try:
        yield
    finally:
        requester.reset(token)
