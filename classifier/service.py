"""ClassificationService: the one thing both faces (HTTP and batch command line) call.

It turns texts and capability names into the response body of the wire contract:
one result per text, in input order, each with its capabilities' keys and, where some
part failed, its own `error` field while the other texts keep their results.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Sequence

from .capabilities import CAPABILITIES, DEFAULT_CAPABILITIES, resolve, run_capabilities
from .calibration import fitted_for
from .capabilities.base import RunContext
from .gold import OPERATOR
from .llm.base import Processor
from .llm.fairness import Requester, requester
from .settings import ClassifierSettings
from .taxonomy import Taxonomy

if TYPE_CHECKING:
    from .gold.flag_models import FlagKnowledge
    from .gold.knowledge import Knowledge


logger = logging.getLogger(__name__)
EMPTY_TEXT = "empty text"
SMALL_REQUEST = 2  # texts at most in a request someone is waiting for, run before files' waiting prompts


class UnknownTaxonomy(ValueError):
    """A request named a taxonomy the server did not load at start."""


@dataclass(frozen=True)
class Job:
    """One text with what its request asked for: resolved capability names and path prefix."""

    text: str
    capabilities: tuple[str, ...]
    prefix: str | None = None
    requester: Requester = Requester()  # who asked: requesters take turns in the backend (`llm.fairness`)
    owner: str = ""  # whose labels answer it: the API key's digest ("" without keys; `gold.store`)
    route: str | None = None  # who decides where labels answer it (`ClassifierSettings.route`); None: the service's


Runner = Callable[[Sequence["Job"], Taxonomy], Awaitable[list[dict[str, Any]]]]


class ClassificationService:
    def __init__(
        self,
        processor: Processor,
        taxonomies: Mapping[str, Taxonomy],
        settings: ClassifierSettings,
        default_taxonomy: str | None = None,
        knowledge: Mapping[tuple[str, str], Knowledge] | None = None,
    ) -> None:
        if not taxonomies:
            raise ValueError("the service needs at least one taxonomy")
        self.processor = processor
        self.taxonomies = dict(taxonomies)
        # Calibrations apply only to the model they were fitted on (another one is refused or left out).
        flags = fitted_for(settings.calibration, settings.flags, processor.model)
        for name in sorted(set(settings.flags) - set(flags)):
            logger.warning("the shipped %s threshold was fitted for model %s, not %s: the default threshold "
                           "applies (fit one: python -m classifier.eval --fit-calibration)", name,
                           settings.flags[name].model, processor.model)
        self.settings = replace(settings, flags=flags)
        self.default_taxonomy = default_taxonomy or next(iter(self.taxonomies))
        # Per (taxonomy name, owner), what its labels give the walk (`gold.training` keeps it current).
        self.knowledge: dict[tuple[str, str], Knowledge] = dict(knowledge or {})
        self.flag_knowledge: dict[str, FlagKnowledge] = {}  # per owner, what its flag labels give the decisions
        self._requests = itertools.count(1)
        self._in_flight: Counter[str] = Counter()  # texts of /classify requests in flight, per API key

    def taxonomy(self, name: str | None) -> Taxonomy:
        """The named taxonomy (the default when None); `UnknownTaxonomy` lists the loaded ones."""
        key = name or self.default_taxonomy
        try:
            return self.taxonomies[key]
        except KeyError:
            raise UnknownTaxonomy(f"unknown taxonomy {key!r}; loaded: {', '.join(self.taxonomies)}") from None

    async def classify(
        self,
        texts: Sequence[str],
        capabilities: Sequence[str] | None = None,
        project_name: str | None = None,
        taxonomy: str | None = None,
        run: Runner | None = None,
        owner: str = "",
        route: str | None = None,
    ) -> dict[str, Any]:
        """The whole response body of `POST /classify` for one request of `owner` (an API key's
        digest, "" without keys): answered from its labels, and taking turns as that key.

        `run` replaces `run_jobs` (the request batcher passes its queue, which runs these
        jobs together with other requests' jobs). `route` replaces the service's for these texts
        (the distilled route answers the comments its learned models are sure of with `learned`)."""
        started = time.perf_counter()
        tree = self.taxonomy(taxonomy)
        names = tuple(resolve(capabilities or DEFAULT_CAPABILITIES))
        who = requester.get()  # a job's lines go in their job's name, and its owner's
        own = not who.name
        if not own:
            owner = who.owner
        else:
            who = self._requester(owner, len(texts))
            self._in_flight[owner] += len(texts)
        try:
            results = await (run or self.run_jobs)([Job(t, names, project_name, who, owner, route) for t in texts], tree)
        finally:
            if own:
                self._in_flight[owner] -= len(texts)
                if not self._in_flight[owner]:
                    del self._in_flight[owner]
        return {
            "results": results,
            "processing_time": round(time.perf_counter() - started, 3),
            "batch_info": {"text_count": len(texts), "capabilities_executed": list(names)},
            "config_used": tree.name,
        }

    def _requester(self, owner: str, texts: int) -> Requester:
        """Who a request takes turns as. With API keys, a key's requests together are one
        requester, and a request is waited for (`small`, run first) only while the key's texts
        in flight, its own included, are a small request's worth: many small requests of one key
        are one bulk requester, never a queue-jump each. Without keys, each request is its own."""
        if not owner:
            return Requester(f"request {next(self._requests)}", small=texts <= SMALL_REQUEST)
        small = texts + self._in_flight[owner] <= SMALL_REQUEST
        return Requester(f"key {owner}" + (" (small)" if small else ""), small=small)

    def knowledge_for(self, taxonomy: str, owner: str) -> Knowledge | None:
        """What answers `owner`'s texts: its own labels' knowledge, else the operator's."""
        return self.knowledge.get((taxonomy, owner)) or self.knowledge.get((taxonomy, OPERATOR))

    async def run_jobs(self, jobs: Sequence[Job], taxonomy: Taxonomy) -> list[dict[str, Any]]:
        """Per-job result objects, in order; each text on its own path (`run_capabilities`).

        The request batcher calls this with the jobs of several requests at once. A text that
        is empty or only whitespace asks the LLM nothing: it gets empty results, `skipped`.
        """
        routes: dict[str | None, list[int]] = {}  # texts of one route go together
        for k, job in enumerate(jobs):
            if job.text.strip():
                routes.setdefault(job.route, []).append(k)
        results: list[dict[str, Any]] = [
            {"text": job.text, **{CAPABILITIES[n].result_key: CAPABILITIES[n].empty() for n in job.capabilities},
             "skipped": EMPTY_TEXT}
            for job in jobs
        ]
        answered = await asyncio.gather(*(self._run_texts([jobs[k] for k in work], taxonomy, route)
                                          for route, work in routes.items()))
        for work, found in zip(routes.values(), answered):
            for k, result in zip(work, found):
                results[k] = result
        return results

    async def _run_texts(self, jobs: Sequence[Job], taxonomy: Taxonomy, route: str | None) -> list[dict[str, Any]]:
        settings = self.settings if route is None else replace(self.settings, route=route)
        ctx = RunContext(
            texts=[j.text for j in jobs],
            prefixes=[j.prefix or taxonomy.root.name for j in jobs],
            taxonomy=taxonomy,
            processor=self.processor,
            settings=settings,
            knowledge=[self.knowledge_for(taxonomy.name, j.owner) for j in jobs],
            flag_knowledge=[self.flag_knowledge.get(j.owner) or self.flag_knowledge.get(OPERATOR) for j in jobs],
            requesters=[j.requester for j in jobs],
        )
        outcomes = await run_capabilities(ctx, [j.capabilities for j in jobs])
        results = []
        for job, per_capability in zip(jobs, outcomes):
            result: dict[str, Any] = {"text": job.text}
            errors: list[str] = []
            for name in job.capabilities:
                outcome = per_capability[name]
                if outcome.value is not None:
                    result[CAPABILITIES[name].result_key] = outcome.value
                errors.extend(outcome.errors)
                if outcome.truncated:
                    result["truncated"] = True
            if errors:
                result["error"] = "; ".join(errors)
            results.append(result)
        return results
