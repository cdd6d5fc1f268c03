"""LocalVLLMProcessor: vLLM's Python API, one engine process per GPU (or one on CPU).

Every prompt is its own request to an engine (`engine.py` runs each engine's continuous
batching in its own process; `worker.py` spawns, supervises and replaces those processes).
Here a prompt waits for a place in an engine (`FairShare`: at most `max_running` at once per
engine, handed round robin between requesters), goes to the engine holding the fewest, and
its answer is checked against its schema when it comes back. A prompt that fails (an engine
that died, an answer that does not parse) fails alone, as an `ItemResult` with an error.

The package imports no vLLM or torch itself: a spawned worker imports it before it has
set its environment. The program that builds a processor must guard its entry point with
`if __name__ == "__main__":` (spawn re-imports it).
"""
from __future__ import annotations

import asyncio
import atexit
import itertools
import weakref
from dataclasses import replace
from typing import Callable, Sequence

from ...settings import EngineSettings
from ..base import Health, ItemResult, JSONSchema, Prompt, Usage
from ..embedded import model_name, resolve_llm
from ..errors import BackendUnavailable, InvalidOutput
from ..fairness import FairShare, requester
from ..probabilities import choice_answer
from ..schema import parse_output
from .config import llm_args, worker_env
from .engine import worker_main
from .messages import EngineConfig, Generated, Request
from .worker import CALL_TIMEOUT_S, START_TIMEOUT_S, Worker, WorkerMain

MAX_RESTARTS = 3  # failed restarts in a row before a crashed worker is left down


def _result(generated: Generated, request: Request) -> ItemResult:
    """The caller's result: the engine's answer checked against the request's schema or options."""
    if generated.error is not None:
        return ItemResult(error=generated.error, truncated=generated.truncated)
    try:
        if request.options:
            value = choice_answer(generated.text or "", generated.top_logprobs, request.options)
        else:
            assert request.schema is not None
            value = parse_output(generated.text or "", request.schema)
    except InvalidOutput as exc:
        cut = f" (generation stopped at max_tokens={request.max_tokens})" if generated.cut_off else ""
        return ItemResult(error=f"{exc}{cut}", truncated=generated.truncated)
    return ItemResult(value=value, truncated=generated.truncated, tokens=generated.tokens)


def _stop_workers(workers: list[Worker]) -> None:
    """Last resort at garbage collection or interpreter exit (holds no processor ref)."""
    for worker in workers:
        worker.stop()


class LocalVLLMProcessor:
    """The in-process backend: vLLM engines in worker processes, one per GPU."""

    backend = "local"

    def __init__(self, settings: EngineSettings, *, worker_main: WorkerMain = worker_main,
                 start_timeout: float = START_TIMEOUT_S, call_timeout: float = CALL_TIMEOUT_S) -> None:
        """`worker_main` and the timeouts exist so tests can run the process handling around
        a stand-in engine in seconds."""
        self.settings = settings
        self._worker_main, self._start_timeout, self._call_timeout = worker_main, start_timeout, call_timeout
        self.model = model_name(settings.llm)
        self.usage = Usage()
        self._workers: list[Worker] = []
        self._share = FairShare(settings.max_running * max(1, len(settings.gpu_list)))
        self._ids = itertools.count()
        self._finalizer: weakref.finalize | None = None

    async def start(self) -> None:
        """Start every engine (in parallel); raise `BackendUnavailable` if any fails."""
        if self._workers:
            return
        loop = asyncio.get_running_loop()
        model = resolve_llm(self.settings.llm, self.settings.cache_dir)
        gpus: list[int | None] = list(self.settings.gpu_list) or [None]
        workers = [Worker(self._engine_config(k, model, gpu), self._worker_main, self._revive, self._start_timeout,
                          self._call_timeout)
                   for k, gpu in enumerate(gpus)]
        self._workers = workers
        # Last resort if close() is never awaited: stop the workers when this object is
        # collected, or at exit. Registered after multiprocessing's own exit hook (which
        # would wait forever on workers still listening), so it runs before it.
        self._finalizer = weakref.finalize(self, _stop_workers, workers)
        self._finalizer.atexit = False
        atexit.register(self._finalizer)
        starts = [loop.run_in_executor(w.lifecycle, w.start) for w in workers]
        outcomes = await asyncio.gather(*starts, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            await self.close()
            self._workers = []
            error = failures[0]
            if isinstance(error, BackendUnavailable):
                raise error
            raise BackendUnavailable(f"engine start failed: {error!r}") from error

    def _engine_config(self, index: int, model: str, gpu: int | None) -> EngineConfig:
        return EngineConfig(
            name=f"engine worker {index} ({'CPU' if gpu is None else f'GPU {gpu}'})",
            env=worker_env(gpu, self.settings.visible_devices),
            llm_args=llm_args(self.settings, model, gpu),
            temperature=self.settings.temperature,
            seed=self.settings.seed,
        )

    async def process_with_schema(
        self, prompts: Sequence[Prompt], schema: JSONSchema, *, max_tokens: int = 256
    ) -> list[ItemResult]:
        """One result per prompt, in order; failures are per item, never raised."""
        return await self._process(prompts, lambda k, prompt: Request(k, prompt, schema, max_tokens))

    async def process_choice(self, prompts: Sequence[Prompt], options: Sequence[str]) -> list[ItemResult]:
        """Per prompt `{"choice", "probabilities"}`: one token under a choice grammar, with
        the top log-probabilities of that token read back."""
        return await self._process(prompts, lambda k, prompt: Request(k, prompt, None, 1, tuple(options)))

    async def _process(self, prompts: Sequence[Prompt], request: Callable[[int, Prompt], Request]) -> list[ItemResult]:
        self._revive()
        return list(await asyncio.gather(*(self._one(request(next(self._ids), p)) for p in prompts)))

    async def _one(self, request: Request) -> ItemResult:
        """One prompt: a place in turn, the least loaded live engine, its answer checked."""
        async with self._share.place():
            problems = [w.problem() for w in self._workers]
            live = [w for w, problem in zip(self._workers, problems) if problem is None]
            if not live:
                self.usage.errors += 1
                return ItemResult.failure(next(filter(None, problems), "the local engine is not started"),
                                          unavailable=True)
            worker = min(live, key=lambda w: w.load)
            generated = await worker.submit(replace(request, urgent=requester.get().small))
        try:
            result = _result(generated, request)
        except Exception as exc:  # noqa: BLE001 - a bug in reading one answer fails that answer alone
            result = ItemResult.failure(f"{worker.name}: the answer could not be read ({type(exc).__name__}: {exc})")
        self._count(generated, result)
        return result

    def _count(self, generated: Generated, result: ItemResult) -> None:
        usage = self.usage
        if generated.text is not None:  # the engine ran it
            usage.llm_calls += 1
            usage.prompt_tokens += generated.prompt_tokens
            usage.completion_tokens += generated.completion_tokens
            usage.cached_prompt_tokens += generated.cached_tokens
        usage.errors += not result.ok
        usage.truncations += result.truncated

    def _revive(self) -> None:
        """Start a replacement for each engine that died, in the background. Its share of
        the work goes to the live engines meanwhile; with none live, items fail fast."""
        loop = asyncio.get_running_loop()
        for worker in self._workers:
            if worker.crashed() and worker.failed_restarts < MAX_RESTARTS:
                loop.run_in_executor(worker.lifecycle, worker.restart, worker.begin_restart())

    async def health(self, *, probe: bool = True) -> Health:
        """Worker processes alive, either way: seeing that is as cheap as asking."""
        self._revive()
        alive = sum(w.problem() is None for w in self._workers)
        return Health(
            ok=bool(self._workers) and alive == len(self._workers),
            backend=self.backend,
            model=self.model,
            detail={"workers": alive, "gpus": list(self.settings.gpu_list), "running": self._share.in_use,
                    "waiting": self._share.waiting},
        )

    async def close(self) -> None:
        """Stop every worker cleanly (each finishes the requests it holds first)."""
        if self._finalizer is None:
            return
        atexit.unregister(self._finalizer)
        self._finalizer.detach()
        self._finalizer = None
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, w.stop) for w in self._workers))
