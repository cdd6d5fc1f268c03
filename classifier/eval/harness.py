"""Runs labelled examples through `ClassificationService`, the path users take, and keeps
what the report needs: each text's predicted paths, stems and polarities, its error and
truncation flags, the processor's usage over the run and the wall time.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..capabilities.classification import node_keys
from ..llm.base import Usage
from ..service import ClassificationService
from ..taxonomy import NodePath, Taxonomy, format_path, parse_stem
from .cache import CounterReader, PrefixCacheCounters, no_reader
from .flags import FlagAnswer, read_flags
from .gold import Example


@dataclass(frozen=True)
class Prediction:
    """What the service answered for one text, in the metrics' terms."""

    paths: frozenset[NodePath]  # every accepted node, root dropped
    polarity: dict[NodePath, str | None]  # per predicted complete stem; None when not asked or failed
    error: str | None = None
    truncated: bool = False
    classified: bool = True  # the result carries a classification (else only an error)
    probabilities: dict[NodePath, float] = field(default_factory=dict)  # accepted nodes, where the strategy gives them
    flags: dict[str, FlagAnswer] = field(default_factory=dict)  # alerts, recommendations, trend, where asked
    sources: dict[NodePath, str] = field(default_factory=dict)  # accepted nodes: what decided each (llm, learned)

    @property
    def stems(self) -> frozenset[NodePath]:
        return frozenset(self.polarity)


@dataclass(frozen=True)
class Run:
    predictions: list[Prediction]
    usage: Usage  # accrued during the run only
    seconds: float
    prefix_cache: PrefixCacheCounters | None  # accrued during the run; None when the backend does not tell


def read_prediction(result: dict[str, Any], taxonomy: Taxonomy) -> Prediction:
    """Parse one wire result. A text whose classification failed predicts what it kept."""
    classification = result.get("classification_result")
    wire_paths = classification["classification_paths"] if classification else []
    paths = frozenset(parse_stem(p)[1:] for p in wire_paths)  # drop the root (or project) prefix
    answers = classification.get("node_results", {}) if classification else {}
    probabilities = {path: answers[key]["probability"] for path, key in node_keys(paths).items()
                     if answers.get(key, {}).get("probability") is not None}
    sources = {path: answers[key]["source"] for path, key in node_keys(paths).items()
               if answers.get(key, {}).get("source")}
    polarities = result.get("stem_polarity", {})
    polarity = {
        stem: polarities.get(format_path(None, stem), {}).get("polarity")
        for stem in taxonomy.in_file_order(set(paths))
        if taxonomy.is_complete_stem(stem)
    }
    return Prediction(paths, polarity, result.get("error"), bool(result.get("truncated")), classification is not None,
                      probabilities, read_flags(result), sources)


PROGRESS_CHUNK = 16  # texts per service call; all calls run at once, so the engine batches them together


async def run(
    service: ClassificationService,
    examples: Sequence[Example],
    capabilities: Sequence[str],
    taxonomy: str | None = None,
    prefix_cache: CounterReader = no_reader,
    on_done: Callable[[int], None] = lambda count: None,
) -> Run:
    """Classify every example and measure what it cost. The texts go in chunks that all run
    at once (the engine sees them together, as one call would give it); `on_done(n)` is
    told as each chunk finishes, for a progress bar."""
    tree = service.taxonomy(taxonomy)
    usage_before, cache_before = service.processor.usage.snapshot(), await prefix_cache()
    started = time.perf_counter()

    async def chunk(part: Sequence[Example]) -> list[dict[str, Any]]:
        body = await service.classify([e.text for e in part], capabilities, taxonomy=taxonomy)
        on_done(len(part))
        return body["results"]

    parts = await asyncio.gather(*(chunk(examples[k : k + PROGRESS_CHUNK])
                                   for k in range(0, len(examples), PROGRESS_CHUNK)))
    seconds = time.perf_counter() - started
    cache_after = await prefix_cache()
    return Run(
        predictions=[read_prediction(r, tree) for results in parts for r in results],
        usage=service.processor.usage.minus(usage_before),
        seconds=seconds,
        prefix_cache=cache_after.minus(cache_before) if cache_before is not None and cache_after is not None else None,
    )
