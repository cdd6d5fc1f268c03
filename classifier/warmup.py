"""Warming the engine's prefix cache at start, so that the first comment does not pay for everyone's prompts.

On the CPU engine most of a lone comment's time goes to prompt tokens no one has asked
before: each question of the walk and each capability's decision pays its whole fixed part
the first time it is asked (a level-2 question of ~370 tokens, ~5 s here). Those parts are
the same for every comment and, once computed, stay in the engine's prefix cache. So the
server asks each of them once at start, in the background (the port answers at once), as a
one-token choice (its prompt and one step), in the name of a requester that any real
request goes before (`llm.fairness`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from .capabilities import CAPABILITIES
from .llm.base import Processor, Prompt, in_batches
from .llm.fairness import Requester, requester
from .settings import ClassifierSettings
from .taxonomy import Taxonomy

COMMENT = "Thank you."  # any comment: only the instructions before it are kept for the next
OPTIONS = ("A", "B")  # one token each: the answer is thrown away
WARMING = Requester("warm-up")
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

    async def run(self, processor: Processor, batch_size: int) -> None:
        """Ask every prompt once; a failed one is logged and counted, never raised."""
        requester.set(WARMING)
        started = time.monotonic()

        async def ask(part: Any) -> list:
            answers = await processor.process_choice(part, OPTIONS)
            self.asked += len(part)
            return answers

        answers = await in_batches(ask, self.prompts, batch_size)
        self.errors = [a.error for a in answers if a.error][:3]
        self.failed = sum(not a.ok for a in answers)
        self.seconds = round(time.monotonic() - started, 1)
        if self.failed:
            logger.warning("warm-up: %d of %d prompts failed, the first: %s", self.failed, len(answers), self.errors[0])
        logger.info("warm-up: %d fixed prompts asked in %.1f s", len(answers), self.seconds)

    def status(self) -> dict[str, Any]:
        return {"prompts": len(self.prompts), "asked": self.asked, "failed": self.failed,
                "done": self.seconds is not None, "seconds": self.seconds}
