"""What the HTTP routes do: classify through the batcher, and report health and counters.

Routes stay thin (`api_router.py`); this is the one place that knows which object holds
which answer.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..batching import RequestBatcher
from ..capabilities import CAPABILITIES, DEFAULT_CAPABILITIES
from ..llm.base import Health, Processor
from ..service import ClassificationService
from ..settings import ServerSettings
from .metrics import Metrics
from .protocol import ClassifyRequest, check_limits


class Backend(Protocol):
    """What the app needs from the thing that owns the LLM: `ProcessorPool` is one."""

    @property
    def processor(self) -> Processor: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def gpu_memory(self) -> list[dict[str, Any]]: ...


@dataclass
class Counters:
    requests: int = 0  # /classify requests answered 200
    texts: int = 0
    text_errors: int = 0  # texts whose result carries an `error`


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

    @property
    def processor(self) -> Processor:
        return self.service.processor

    async def classify(self, request: ClassifyRequest) -> dict[str, Any]:
        check_limits(request, self.limits)
        body = await self.batcher.classify(request.texts, request.capabilities, request.project_name, request.taxonomy)
        self.counters.requests += 1
        self.counters.texts += len(body["results"])
        self.counters.text_errors += sum("error" in result for result in body["results"])
        return body

    async def health(self) -> dict[str, Any]:
        try:
            health = await self.processor.health()
        except Exception as exc:  # noqa: BLE001 - a broken backend is an answer here, not a crash
            health = Health(ok=False, backend=self.processor.backend, model=self.processor.model,
                            detail={"error": f"{type(exc).__name__}: {exc}"})
        return {
            "status": "ok" if health.ok else "unavailable",
            "backend": health.backend,
            "model": health.model,
            "gpus": self.backend.gpu_memory(),
            "detail": health.detail,
        }

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
        return {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "backend": self.processor.backend,
            "model": self.processor.model,
            **asdict(self.counters),
            "queued_texts": self.batcher.queued_texts,
            "batching": {"window_s": self.batcher.window, **asdict(self.batcher.stats)},
            "llm": asdict(self.processor.usage),
        }
