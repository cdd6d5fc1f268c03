"""What the HTTP routes do: classify through the batcher, and report health and counters.

Routes stay thin (`api_router.py`); this is the one place that knows which object holds
which answer.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Protocol

from ..batching import RequestBatcher
from ..capabilities import CAPABILITIES, DEFAULT_CAPABILITIES
from ..llm.base import Health, Processor
from ..report import summarize
from ..service import ClassificationService, UnknownTaxonomy
from ..settings import ServerSettings
from ..warmup import WarmUp
from .metrics import Metrics
from .protocol import ClassifyRequest, check_limits

SERVICE_NAME = "LLM topic classifier"
logger = logging.getLogger(__name__)
PROCESSING_TIMES_KEPT = 1000  # /stats averages over the last this many requests
ENDPOINTS = {
    "POST /classify": "classify texts (also POST /v1/classify)",
    "GET /health": "liveness and the prototype's fields; never calls the LLM",
    "GET /ready": "readiness: 200 when the LLM backend answers, else 503 and why",
    "GET /capabilities": "capability names and the loaded taxonomies",
    "GET /stats": "counters since start",
    "GET /metrics": "Prometheus text format",
    "GET /docs": "the interactive OpenAPI page",
}


def _version() -> str:
    try:
        return version("llm-topic-classifier")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class Backend(Protocol):
    """What the app needs from the thing that owns the LLM: `ProcessorPool` is one."""

    @property
    def processor(self) -> Processor: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def gpu_count(self) -> int: ...

    def gpu_memory(self) -> list[dict[str, Any]]: ...


@dataclass
class Counters:
    requests: int = 0  # /classify requests answered 200
    texts: int = 0
    text_errors: int = 0  # texts whose result carries an `error`
    by_capability: Counter[str] = field(default_factory=Counter)  # requests that ran each capability
    processing_times: deque[float] = field(default_factory=lambda: deque(maxlen=PROCESSING_TIMES_KEPT))


class Serving:
    def __init__(
        self,
        service: ClassificationService,
        batcher: RequestBatcher,
        backend: Backend,
        metrics: Metrics,
        limits: ServerSettings,
    ) -> None:
        self.service, self.batcher, self.backend, self.metrics, self.limits = service, batcher, backend, metrics, limits
        self.counters = Counters()
        self.started = time.monotonic()
        self.gold: Callable[[], dict[str, Any]] | None = None  # the learning loop's status, with a jobs store
        self.warm_up: WarmUp | None = None  # the start's warm-up of the prefix cache, where one runs

    @property
    def processor(self) -> Processor:
        return self.service.processor

    async def classify(self, request: ClassifyRequest, *, background: bool = False, owner: str = "",
                       route: str | None = None) -> dict[str, Any]:
        """One request's answer for `owner` (its API key's digest); `background` for a job's
        line (see `RequestBatcher`); `route` for a distilled job's lines past its sample."""
        check_limits(request, self.limits)
        taxonomy = self.taxonomy_for(request)
        body = await self.batcher.classify(request.texts, request.capabilities, request.project_name, taxonomy,
                                           background=background, owner=owner, route=route)
        if request.summary:
            body["summary"] = summarize(body["results"], self.service.taxonomy(taxonomy)).as_dict()
        counters = self.counters
        counters.requests += 1
        counters.texts += len(body["results"])
        counters.text_errors += sum("error" in result for result in body["results"])
        counters.by_capability.update(body["batch_info"]["capabilities_executed"])
        counters.processing_times.append(body["processing_time"])
        return body

    def taxonomy_for(self, request: ClassifyRequest) -> str | None:
        """The taxonomy a request names, by `taxonomy` or by the prototype's `config_path`.

        A `config_path` is matched against the files loaded at start (same resolved path,
        else same file name) and never opened: a client must not make the server read files."""
        if request.config_path is None:
            return request.taxonomy
        if "\x00" in request.config_path:
            raise UnknownTaxonomy("config_path holds a NUL character; give the path of a taxonomy the server loaded "
                                  "at start, or name it with \"taxonomy\" (see GET /capabilities)")
        wanted = Path(request.config_path)
        sources = {name: tree.source for name, tree in self.service.taxonomies.items() if tree.source is not None}
        match = next((n for n, src in sources.items() if src == wanted.resolve()), None) or next(
            (n for n, src in sources.items() if src.name == wanted.name), None
        )
        loaded = ", ".join(f"{name} ({src})" for name, src in sources.items()) or "none from files"
        if match is None:
            raise UnknownTaxonomy(
                f"config_path {request.config_path!r} is not a taxonomy this server loaded at start, and the server "
                f"never reads files named by clients. Loaded: {loaded}. Name one with \"taxonomy\", or start the "
                f"server with --taxonomy NAME=PATH to load more"
            )
        if request.taxonomy is not None and request.taxonomy != match:
            raise UnknownTaxonomy(
                f"config_path {request.config_path!r} is taxonomy {match!r} but taxonomy says {request.taxonomy!r}; "
                "send one of them"
            )
        return match

    async def health(self) -> dict[str, Any]:
        """Liveness with the prototype's fields; reads state only, never calls the LLM, so a
        probe every second costs nothing and never counts against a server."""
        health = await self._backend_health(probe=False)
        default = self.service.taxonomies[self.service.default_taxonomy].source
        gpus = await asyncio.to_thread(self.backend.gpu_memory)  # NVML calls block
        return {
            "status": "healthy",
            "processor_loaded": health.ok,
            "gpu_count": self.backend.gpu_count,
            "capabilities_available": list(CAPABILITIES),
            "requests_processed": self.counters.requests,
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "default_config": str(default) if default else None,
            "backend": health.backend,
            "model": health.model,
            "gpus": gpus,
            "detail": {**health.detail, **self._gold(),
                       **({"warm_up": self.warm_up.status()} if self.warm_up is not None else {})},
        }

    async def ready(self) -> dict[str, Any]:
        """Readiness: asks the backend now (a server's models list, an engine's worker)."""
        health = await self._backend_health(probe=True)
        return {"status": "ready" if health.ok else "unavailable", "backend": health.backend,
                "model": health.model, "detail": health.detail, **self._gold()}  # fmt: skip

    def _gold(self) -> dict[str, Any]:
        """Per taxonomy, the labels' state: slots loaded, loading, and those that failed with why."""
        return {"gold": self.gold()} if self.gold is not None else {}

    async def _backend_health(self, *, probe: bool) -> Health:
        try:
            return await self.processor.health(probe=probe)
        except Exception:  # noqa: BLE001 - a broken backend is an answer here, not a crash
            logger.exception("the backend's health check failed")
            return Health(ok=False, backend=self.processor.backend, model=self.processor.model,
                          detail={"error": "the backend's health check failed; the server log says why"})

    def root(self) -> dict[str, Any]:
        return {"service": SERVICE_NAME, "version": _version(), "endpoints": ENDPOINTS}

    def capabilities(self) -> dict[str, Any]:
        return {
            "capabilities": [
                {"name": c.name, "result_key": c.result_key, "requires": list(c.requires),
                 "default": c.name in DEFAULT_CAPABILITIES}
                for c in CAPABILITIES.values()
            ],
            "taxonomies": [
                {"name": name, "root": tree.root.name, "nodes": sum(1 for _ in tree.nodes()),
                 "leaves": len(tree.leaf_paths()), "depth": tree.depth,
                 "default": name == self.service.default_taxonomy}
                for name, tree in self.service.taxonomies.items()
            ],
        }  # fmt: skip

    def stats(self) -> dict[str, Any]:
        counters, uptime = self.counters, round(time.monotonic() - self.started, 1)
        times = counters.processing_times
        return {
            # The prototype's fields, which its clients read.
            "total_requests": counters.requests,
            "total_texts_processed": counters.texts,
            "average_processing_time": round(sum(times) / len(times), 4) if times else 0.0,
            "requests_by_capability": dict(counters.by_capability),
            "uptime_seconds": uptime,
            "configs_cached": len(self.service.taxonomies),
            # Ours.
            "uptime_s": uptime,
            "backend": self.processor.backend,
            "model": self.processor.model,
            "requests": counters.requests,
            "texts": counters.texts,
            "text_errors": counters.text_errors,
            "queued_texts": self.batcher.queued_texts,
            "batching": {"window_s": self.batcher.window, **asdict(self.batcher.stats)},
            "llm": asdict(self.processor.usage),
        }
