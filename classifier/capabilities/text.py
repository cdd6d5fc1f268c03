"""Capabilities that read the whole comment: recommendations, alerts and trend.

Each first decides whether the comment holds anything of its kind (one token, see `flags`),
then asks the comments that pass for the details.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .. import prompts
from ..llm.base import ItemResult
from ..outputs import Alerts, Recommendations, Trends
from .base import Capability, Outcome, RunContext, ask, validated
from .flags import ALERT_WORDS, RECOMMENDATION_WORDS, TREND_WORDS, Decision, Details, Sorting, decide


class TextCapability(Capability):
    """A capability that reads each whole comment: a decision, then the details of those that pass."""

    def __init__(self, name: str, result_key: str, sorting: Sorting, task: str, output: type[BaseModel]) -> None:
        self.name, self.result_key, self.output, self.sorting, self.task = name, result_key, output, sorting, task
        self.details = Details.of(output)
        self.max_tokens = self.details.max_tokens

    def empty(self) -> Any:
        """`{"has_alerts": false, "alerts": []}` and the like: every flag false, every list empty."""
        return {name: False if f.annotation is bool else [] for name, f in self.output.model_fields.items()}

    async def run(self, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
        decisions = await decide(ctx, self.name, self.sorting,
                                 [prompts.sorting_prompt(self.sorting.words, ctx.texts[i], self.sorting.hint) for i in indices])
        outcomes = {i: Outcome() for i in indices}
        passed: list[tuple[int, Decision]] = []
        for i, decision in zip(indices, decisions):
            if not isinstance(decision, Decision):
                outcomes[i].note(self.name, decision, "decision")
            elif decision.passed:
                passed.append((i, decision))
            else:
                outcomes[i].value = self.details.wire(decision, None)
        answers = await ask(ctx, [prompts.text_prompt(self.task, ctx.texts[i]) for i, _ in passed],
                            self.details.schema, self.max_tokens)
        for (i, decision), answer in zip(passed, answers):
            if answer.ok:
                answer = validated(self.output, ItemResult(value={self.details.flag: True, **answer.value},
                                                           truncated=answer.truncated))
            if outcomes[i].note(self.name, answer, "details"):
                outcomes[i].value = self.details.wire(decision, answer.value)
        return outcomes


recommendations = TextCapability("recommendations", "recommendations", RECOMMENDATION_WORDS,
                                 prompts.RECOMMENDATIONS_TASK, Recommendations)
alerts = TextCapability("alerts", "alerts", ALERT_WORDS, prompts.ALERTS_TASK, Alerts)
trend = TextCapability("trend", "trends", TREND_WORDS, prompts.TRENDS_TASK, Trends)
