"""Prometheus metrics: HTTP traffic measured at the door, work counters read at scrape time.

Counts that already live somewhere (the processor's `Usage`, the batcher's stats, the
serving counters) are not copied into Prometheus counters; a collector reads them when
/metrics is scraped, so there is one source of truth for /stats and /metrics alike.
Each app has its own registry, so several apps (tests) never share counters.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..llm.chain import FallbackChain, link_name

if TYPE_CHECKING:
    from ..jobs.store import JobStore
    from .serving import Serving

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "classifier_http_requests", "HTTP requests by route, method and status",
            ["route", "method", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "classifier_http_request_seconds", "HTTP request latency by route",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.rate_limited = Counter(
            "classifier_rate_limited", "Requests refused past a key's --rate-limit, by route family",
            ["family"], registry=self.registry,
        )  # fmt: skip
        self.chunk_latency = Histogram(
            "classifier_job_chunk_seconds", "Time to classify and commit one job chunk",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._work = _WorkCollector()
        self.registry.register(self._work)
        self._jobs = _JobsCollector()
        self.registry.register(self._jobs)

    def watch(self, serving: "Serving") -> None:
        """Report this serving's work counters from now on (called once the backend runs)."""
        self._work.serving = serving

    def watch_jobs(self, store: "JobStore") -> None:
        """Report the jobs queue (read from the database at scrape: every worker's work counts)."""
        self._jobs.store = store

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _WorkCollector:
    """Texts, LLM calls, tokens and errors per backend, read from their owners at scrape."""

    def __init__(self) -> None:
        self.serving: Serving | None = None

    def collect(self) -> Iterator[Metric]:
        serving = self.serving
        if serving is None:
            return
        backend = serving.processor.backend
        usage = serving.processor.usage
        counters = {
            "classifier_texts": ("Texts classified", serving.counters.texts),
            "classifier_text_errors": ("Texts answered with an error field", serving.counters.text_errors),
            "classifier_llm_calls": ("Prompts answered by the LLM backend", usage.llm_calls),
            "classifier_llm_errors": ("Prompts the LLM backend failed after its retries", usage.errors),
            "classifier_llm_truncations": ("Prompts whose comment was shortened to fit", usage.truncations),
        }
        for name, (doc, value) in counters.items():
            family = CounterMetricFamily(name, doc, labels=["backend"])
            family.add_metric([backend], value)
            yield family
        tokens = CounterMetricFamily("classifier_llm_tokens", "Tokens through the LLM backend", labels=["backend", "kind"])
        tokens.add_metric([backend, "prompt"], usage.prompt_tokens)
        tokens.add_metric([backend, "completion"], usage.completion_tokens)
        tokens.add_metric([backend, "cached_prompt"], usage.cached_prompt_tokens)
        yield tokens
        chain = serving.processor
        if isinstance(chain, FallbackChain):
            answers = CounterMetricFamily("classifier_llm_link_answers", "Prompts answered, per link of the fallback chain",
                                          labels=["link", "role"])
            for k, link in enumerate(chain.links):
                answers.add_metric([link_name(link), "primary" if k == 0 else "fallback"], chain.answers[k])
            yield answers
        batches = CounterMetricFamily("classifier_batches", "Classification passes run (coalesced requests)")
        batches.add_metric([], serving.batcher.stats.batches)
        yield batches
        queued = GaugeMetricFamily("classifier_queued_texts", "Texts admitted and not yet answered")
        queued.add_metric([], serving.batcher.queued_texts)
        yield queued


class _JobsCollector:
    """Batches queued, chunks running, lines done and failed, across all workers."""

    def __init__(self) -> None:
        self.store: JobStore | None = None

    def collect(self) -> Iterator[Metric]:
        if self.store is None:
            return
        counts = self.store.counts()
        for name, doc, value in (
            ("classifier_jobs_queued", "Batches in progress", counts["queued"]),
            ("classifier_jobs_running_chunks", "Chunks held by a worker now", counts["running_chunks"]),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
        for name, doc, value in (
            ("classifier_job_lines_done", "Job lines answered", counts["lines_done"]),
            ("classifier_job_lines_failed", "Job lines failed as a whole", counts["lines_failed"]),
        ):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], value)
            yield counter
