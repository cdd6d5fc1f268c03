"""The capability registry: names, dependencies and the order they run in."""
from __future__ import annotations

import asyncio
import logging
from typing import Iterable, Sequence

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
    """Run each capability once over every text that wants it (`wanted[i]` holds text i's
    resolved names). Capabilities whose requirements are met run concurrently."""
    texts_for = {name: [i for i, names in enumerate(wanted) if name in names] for name in CAPABILITIES}
    pending = [name for name in CAPABILITIES if texts_for[name]]
    outcomes: list[dict[str, Outcome]] = [{} for _ in wanted]
    done: set[str] = set()
    while pending:
        ready = [n for n in pending if set(CAPABILITIES[n].requires) <= done]
        if not ready:
            raise ValueError(f"capabilities {pending} need others nobody asked for; pass names through resolve()")
        results = await asyncio.gather(*(_run_one(n, ctx, texts_for[n]) for n in ready))
        for name, per_text in zip(ready, results):
            for i, outcome in per_text.items():
                outcomes[i][name] = outcome
        done.update(ready)
        pending = [n for n in pending if n not in done]
    return outcomes


async def _run_one(name: str, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
    """Run one capability; if it fails as a whole (a backend gone, a bug), every text it
    covered gets an error that says so without internals (the log has the traceback) and
    the other capabilities' results are kept."""
    try:
        return await CAPABILITIES[name].run(ctx, indices)
    except Exception:  # noqa: BLE001 - the failure becomes per-item errors
        logger.exception("capability %s failed for %d texts", name, len(indices))
        return {i: Outcome(errors=[f"{name}: failed on the server's side; its log says why"]) for i in indices}
