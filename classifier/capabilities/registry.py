"""The capability registry: names, dependencies and the order they run in."""
from __future__ import annotations

import asyncio
import logging
from typing import Iterable, Sequence

from ..llm.fairness import requester
from .base import Capability, Outcome, RunContext
from .classification import Classification
from .stems import stem_polarity, stem_recommendations, stem_trend
from .text import alerts, recommendations, trend

CAPABILITIES: dict[str, Capability] = {
    c.name: c
    for c in (Classification(), recommendations, alerts, trend, stem_polarity, stem_recommendations, stem_trend)
}
DEFAULT_CAPABILITIES = ("classification",)
logger = logging.getLogger(__name__)


class UnknownCapability(ValueError):
    """A request named a capability that does not exist; the message lists those that do."""


def resolve(names: Iterable[str]) -> list[str]:
    """The named capabilities plus what they require, in registry order, each once."""
    wanted: set[str] = set()
    for name in names:
        if name not in CAPABILITIES:
            raise UnknownCapability(f"unknown capability {name!r}; available: {', '.join(CAPABILITIES)}")
        wanted.add(name)
        wanted.update(CAPABILITIES[name].requires)
    return [name for name in CAPABILITIES if name in wanted]


async def run_capabilities(ctx: RunContext, wanted: Sequence[Sequence[str]]) -> list[dict[str, Outcome]]:
    """Run each text's capabilities (`wanted[i]` holds text i's resolved names), each text on
    its own path: a capability starts as soon as what it requires is done for that text, so
    those that need nothing start at once, side by side, and no text waits for another."""
    return list(await asyncio.gather(*(_run_text(ctx, i, names) for i, names in enumerate(wanted))))


async def _run_text(ctx: RunContext, i: int, names: Sequence[str]) -> dict[str, Outcome]:
    """Text `i`'s capabilities, in its requester's name (`llm.fairness`: this task and those it starts)."""
    if ctx.requesters:
        requester.set(ctx.requesters[i])
    missing = {r for n in names for r in CAPABILITIES[n].requires} - set(names)
    if missing:
        raise ValueError(f"capabilities {list(names)} need {sorted(missing)}; pass names through resolve()")
    runs: dict[str, asyncio.Future[dict[int, Outcome]]] = {}

    async def run(name: str) -> dict[int, Outcome]:
        await asyncio.gather(*(runs[r] for r in CAPABILITIES[name].requires))
        return await _run_one(name, ctx, [i])

    for name in (n for n in CAPABILITIES if n in names):  # registry order: requirements first
        runs[name] = asyncio.ensure_future(run(name))
    done = await asyncio.gather(*runs.values())
    return {name: per_text[i] for name, per_text in zip(runs, done)}


async def _run_one(name: str, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
    """Run one capability; if it fails as a whole (a backend gone, a bug), every text it
    covered gets an error that says so without internals (the log has the traceback) and
    the other capabilities' results are kept."""
    try:
        return await CAPABILITIES[name].run(ctx, indices)
    except Exception:  # noqa: BLE001 - the failure becomes per-item errors
        logger.exception("capability %s failed for %d texts", name, len(indices))
        return {i: Outcome(errors=[f"{name}: failed on the server's side; its log says why"]) for i in indices}
