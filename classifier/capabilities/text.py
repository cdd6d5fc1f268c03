"""Capabilities that read the whole comment: recommendations, alerts and trend.

Each first decides whether the comment holds anything of its kind (one token, see `flags`),
then asks the comments that pass for the details.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .. import prompts
from ..outputs import Alerts, Recommendations, Trends
from ..llm.base import Prompt
from ..settings import ClassifierSettings
from ..taxonomy import Taxonomy
from .base import Capability, Outcome, RunContext
from .flags import ALERT_WORDS, RECOMMENDATION_WORDS, TREND_WORDS, Details, Sorting, decide_then_detail, labelled


class TextCapability(Capability):
    """A capability that reads each whole comment: a decision, then the details of those that pass."""

    def __init__(self, name: str, result_key: str, sorting: Sorting, task: str, output: type[BaseModel]) -> None:
        self.name, self.result_key, self.output, self.sorting, self.task = name, result_key, output, sorting, task
        self.details = Details.of(output)
        self.max_tokens = self.details.max_tokens

    def empty(self) -> Any:
        """`{"has_alerts": false, "alerts": []}` and the like: every flag false, every list empty."""
        return {name: False if f.annotation is bool else [] for name, f in self.output.model_fields.items()}

    def fixed_prompts(self, taxonomy: Taxonomy, settings: ClassifierSettings, comment: str) -> list[Prompt]:
        """The decision and the details' task: the same for every comment."""
        return [prompts.sorting_prompt(self.sorting.words, comment, self.sorting.hint),
                prompts.text_prompt(self.task, comment)]

    async def run(self, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
        questions = [prompts.sorting_prompt(self.sorting.words, ctx.texts[i], self.sorting.hint) for i in indices]
        rulings = await decide_then_detail(ctx, self.name, self.sorting, self.details, self.output, questions,
                                           lambda k: prompts.text_prompt(self.task, ctx.texts[indices[k]]),
                                           await labelled(ctx, self.name, indices))
        outcomes = {i: Outcome() for i in indices}
        for i, ruling in zip(indices, rulings):
            if ruling.answer is None:
                outcomes[i].value = self.details.wire(ruling.decision, None)
            elif outcomes[i].note(self.name, ruling.answer, "decision" if ruling.decision is None else "details"):
                outcomes[i].value = self.details.wire(ruling.decision, ruling.answer.value)
        return outcomes


recommendations = TextCapability("recommendations", "recommendations", RECOMMENDATION_WORDS,
                                 prompts.RECOMMENDATIONS_TASK, Recommendations)
alerts = TextCapability("alerts", "alerts", ALERT_WORDS, prompts.ALERTS_TASK, Alerts)
trend = TextCapability("trend", "trends", TREND_WORDS, prompts.TRENDS_TASK, Trends)
