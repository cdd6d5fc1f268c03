"""The prefix-cache counters vLLM exports, read before and after a run.

vLLM counts, in tokens, how much prompt it looked up in its prefix cache
(`vllm:prefix_cache_queries`) and how much of that it found there
(`vllm:prefix_cache_hits`). hits / queries is the share of prompt tokens whose
computation the shared prompt prefix saved.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..llm.base import Usage

QUERIES = "vllm:prefix_cache_queries"
HITS = "vllm:prefix_cache_hits"


@dataclass(frozen=True)
class PrefixCacheCounters:
    queries: int  # prompt tokens looked up in the prefix cache
    hits: int  # of those, tokens served from the cache

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0

    def minus(self, earlier: "PrefixCacheCounters") -> "PrefixCacheCounters":
        return PrefixCacheCounters(self.queries - earlier.queries, self.hits - earlier.hits)

    def __add__(self, other: "PrefixCacheCounters") -> "PrefixCacheCounters":
        return PrefixCacheCounters(self.queries + other.queries, self.hits + other.hits)


CounterReader = Callable[[], Awaitable["PrefixCacheCounters | None"]]


def parse_counters(metrics_text: str) -> PrefixCacheCounters | None:
    """The two counters from Prometheus text, summed over label sets (engines); None
    when the text has no prefix-cache counter (caching off, or not a vLLM)."""
    wanted = {f"{QUERIES}_total": QUERIES, f"{HITS}_total": HITS}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name in wanted:
                totals[wanted[s.name]] = totals.get(wanted[s.name], 0.0) + s.value
    if QUERIES not in totals:
        return None
    return PrefixCacheCounters(int(totals[QUERIES]), int(totals.get(HITS, 0)))


def server_reader(server_urls: Sequence[str], timeout: float = 10.0) -> CounterReader:
    """Reads the counters from each vLLM server's `/metrics` (beside its `/v1`) and adds
    them up; None when a server does not export them."""
    metrics_urls = [url.rstrip("/").removesuffix("/v1") + "/metrics" for url in server_urls]

    async def read() -> PrefixCacheCounters | None:
        total = PrefixCacheCounters(0, 0)
        async with httpx.AsyncClient(timeout=timeout) as client:
            for url in metrics_urls:
                response = await client.get(url)
                response.raise_for_status()
                counters = parse_counters(response.text)
                if counters is None:
                    return None
                total += counters
        return total

    return read


def usage_reader(usage: Usage) -> CounterReader:
    """The counters from a processor's own usage: the local engine reports, per request,
    how many prompt tokens its prefix cache served."""

    async def read() -> PrefixCacheCounters:
        return PrefixCacheCounters(usage.prompt_tokens, usage.cached_prompt_tokens)

    return read


async def no_reader() -> None:
    """For backends that do not report prefix-cache counters."""
    return None
