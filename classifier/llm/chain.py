"""A fallback chain of backends: the first link that is up answers; the others stand by.

The source designs fall back when the primary engine is unavailable. Here a chain holds the
primary processor and its fallbacks (servers named by `--fallback-server-url`, a local engine
with `--fallback local`) in order. Each call goes to the first link whose own view says it
can answer (a server pool with a server not set aside, an engine whose workers live); the
items a link could not answer (unreachable, out of time, or it went down under them) go on to
the next link, so texts another engine could answer do not fail; an item's own failure (a
request the server refuses, output that does not parse) does not. When the primary comes back (its background probe takes a server back, a
dead engine is restarted), calls go to it again: nothing is sticky.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Sequence

from .base import Health, ItemResult, JSONSchema, Processor, Prompt, Usage

Call = Callable[[Processor, Sequence[Prompt]], Awaitable[list[ItemResult]]]


def link_name(processor: Processor) -> str:
    """How /health and /metrics name a link: its backend and model."""
    return f"{processor.backend} {processor.model}"


class FallbackChain:
    """A `Processor` over `links`, the primary first. Its backend and model are the primary's;
    `answers` counts, per link, the items each answered."""

    def __init__(self, links: Sequence[Processor]) -> None:
        if len(links) < 2:
            raise ValueError("a fallback chain needs a primary and at least one fallback")
        self.links = list(links)
        self.answers = [0] * len(self.links)
        self.serving = 0  # the link the last call went to first

    @property
    def backend(self) -> str:
        return self.links[0].backend

    @property
    def model(self) -> str:
        return self.links[0].model

    @property
    def usage(self) -> Usage:
        """Every link's usage together."""
        total = Usage()
        for link in self.links:
            total.add(link.usage)
        return total

    async def process_with_schema(self, prompts: Sequence[Prompt], schema: JSONSchema, *,
                                  max_tokens: int = 256) -> list[ItemResult]:
        return await self._route(lambda link, part: link.process_with_schema(part, schema, max_tokens=max_tokens),
                                 prompts)

    async def process_choice(self, prompts: Sequence[Prompt], options: Sequence[str]) -> list[ItemResult]:
        return await self._route(lambda link, part: link.process_choice(part, options), prompts)

    async def _up(self) -> list[int]:
        """The links that say they can answer now, in order; all of them when none does (an
        attempt beats failing without one)."""
        views = await asyncio.gather(*(link.health(probe=False) for link in self.links))
        up = [k for k, view in enumerate(views) if view.ok]
        return up or list(range(len(self.links)))

    async def _route(self, call: Call, prompts: Sequence[Prompt]) -> list[ItemResult]:
        """Each prompt's answer from the first link up; those a link could not answer (it was
        unreachable, or went down under them) are asked of the next link up, to the last."""
        results: list[ItemResult] = [ItemResult.failure("not asked")] * len(prompts)
        pending = list(range(len(prompts)))
        order = await self._up()
        self.serving = order[0]
        for position, k in enumerate(order):
            answers = await call(self.links[k], [prompts[i] for i in pending])
            for i, answer in zip(pending, answers):
                results[i] = answer
            self.answers[k] += sum(answer.ok for answer in answers)
            if position == len(order) - 1:
                break
            down = not (await self.links[k].health(probe=False)).ok
            pending = [i for i, answer in zip(pending, answers) if not answer.ok and (answer.unavailable or down)]
            if not pending:
                break  # all answered, or the failures are the items' own (a bad request, unreadable output)
        return results

    async def health(self, *, probe: bool = True) -> Health:
        """Up when any link is; the detail lists the chain, which link serves, and each link's own."""
        views = await asyncio.gather(*(link.health(probe=probe) for link in self.links))
        up = [k for k, view in enumerate(views) if view.ok]
        primary = views[0]
        return Health(
            ok=bool(up),
            backend=primary.backend,
            model=primary.model,
            detail={
                **primary.detail,
                "chain": [{"link": link_name(link), "role": "primary" if k == 0 else "fallback", "ok": view.ok,
                           "answers": self.answers[k], "detail": view.detail}
                          for k, (link, view) in enumerate(zip(self.links, views))],
                "serving": link_name(self.links[up[0]]) if up else None,
            },
        )

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links))
