"""Warming the engine's prefix cache at start, so that the first comment does not pay for everyone's prompts.

On the CPU engine most of a lone comment's time goes to prompt tokens no one has asked
before: each question of the walk and each capability's decision pays its whole fixed part
the first time it is asked (a level-2 question of ~370 tokens, ~5 s here). Those parts are
the same for every comment and, once computed, stay in the engine's prefix cache. So the
server asks each of them once at start, in the background (the port answers at once), as a
one-token choice (its prompt and one step), one at a time and only while no request is
being answered: a comment that comes meanwhile waits for one warm-up prompt at most.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .capabilities import CAPABILITIES
from .llm.base import Processor, Prompt
from .llm.fairness import Requester, requester
from .settings import ClassifierSettings
from .taxonomy import Taxonomy

COMMENT = "Thank you."  # any comment: only the instructions before it are kept for the next
OPTIONS = ("A", "B")  # one token each: the answer is thrown away
WARMING = Requester("warm-up")
IDLE_POLL_S = 0.05  # how often a paused warm-up looks whether the requests are answered
logger = logging.getLogger(__name__)


def fixed_prompts(taxonomies: Mapping[str, Taxonomy], settings: ClassifierSettings) -> list[Prompt]:
    """Every capability's questions whose instructions every comment shares, each once."""
    seen: set[str] = set()
    found = []
    for taxonomy in taxonomies.values():
        for capability in CAPABILITIES.values():
            for prompt in capability.fixed_prompts(taxonomy, settings, COMMENT):
                if prompt.instructions not in seen:
                    seen.add(prompt.instructions)
                    found.append(prompt)
    return found


@dataclass
class WarmUp:
    """The start's warm-up and how far it got, for /health."""

    prompts: list[Prompt]
    asked: int = 0
    failed: int = 0
    seconds: float | None = None  # set when done
    errors: list[str] = field(default_factory=list)

    async def run(self, processor: Processor, idle: Callable[[], bool] = lambda: True) -> None:
        """Ask every prompt once, one at a time and only while `idle()` says no request is being
        answered: on the CPU a comment that shares the engine's steps with the warm-up's prompts
        waited for nearly all of them (docs/benchmarks.md, section 11). A failed prompt is logged
        and counted, never raised."""
        requester.set(WARMING)
        started = time.monotonic()
        answers = []
        for prompt in self.prompts:
            while not idle():
                await asyncio.sleep(IDLE_POLL_S)
            answers += await processor.process_choice([prompt], OPTIONS)
            self.asked += 1
        self.errors = [a.error for a in answers if a.error][:3]
        self.failed = sum(not a.ok for a in answers)
        self.seconds = round(time.monotonic() - started, 1)
        if self.failed:
            logger.warning("warm-up: %d of %d prompts failed, the first: %s", self.failed, len(answers), self.errors[0])
        logger.info("warm-up: %d fixed prompts asked in %.1f s", len(answers), self.seconds)

    def status(self) -> dict[str, Any]:
        return {"prompts": len(self.prompts), "asked": self.asked, "failed": self.failed,
                "done": self.seconds is not None, "seconds": self.seconds}
