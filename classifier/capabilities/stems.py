"""Capabilities asked about the complete stems a text was classified into: polarity,
recommendations and trends per topic (the last two decide per stem before detailing, as
the whole-comment ones do)."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from pydantic import BaseModel

from ..prompts import (
    STEM_POLARITY_TASK, STEM_RECOMMENDATIONS_TASK, STEM_TRENDS_TASK, STEMS_POLARITY_TASK, stem_prompt,
    stem_sorting_prompt, stems_prompt,
)  # fmt: skip
from ..hierarchy import reported
from ..llm.base import ItemResult, Prompt
from ..llm.probabilities import value_probability
from ..llm.schema import answer_token_bound
from ..outputs import POLARITIES, StemPolarity, StemRecommendations, Trends
from ..taxonomy import NodePath, format_path
from .base import Capability, Outcome, RunContext, StemCapability, ask, complete_stems
from .flags import RECOMMENDATION_WORDS, TREND_WORDS, Decision, Details, Sorting, decide_then_detail


class StemPolarityCapability(StemCapability):
    """How the comment feels about each of its stems, with the model's probability of it.

    By default one call per text judges all its stems at once and answers the polarity
    alone (`{"Food>Quality": "Positive", ...}`): a few tokens per stem, so cheap enough to
    ask of every text; `confidence` then comes from the probability, `reasoning` and
    `excerpt` are empty. With `ClassifierSettings.stem_reasoning`, one call per stem also
    asks for the model's confidence, a reasoning and an excerpt (the prototype's way).
    """

    def __init__(self) -> None:
        super().__init__("stem_polarity", "stem_polarity", STEM_POLARITY_TASK, StemPolarity)

    def wire_value(self, value: dict[str, Any], answer: ItemResult) -> Any:
        probability = reported(value_probability(answer.tokens, "polarity"))["probability"]
        return {"polarity": value["polarity"], "confidence": value["confidence"], "probability": probability,
                "reasoning": value["reasoning"], "excerpt": value["excerpt"], "source": "llm"}

    async def run(self, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
        if ctx.settings.stem_reasoning:
            return await super().run(ctx, indices)
        outcomes = {i: Outcome(value={}) for i in indices}
        learned = await self._learned(ctx, indices, outcomes)
        # One schema per set of stems: texts that share it go to the backend together.
        groups: dict[tuple[NodePath, ...], list[int]] = defaultdict(list)
        for i in indices:
            if (stems := complete_stems(ctx, i)) and i not in learned:
                groups[tuple(stems)].append(i)
        await asyncio.gather(*(self._judge(ctx, stems, group, outcomes) for stems, group in groups.items()))
        return outcomes

    async def _learned(self, ctx: RunContext, indices: list[int], outcomes: dict[int, Outcome]) -> set[int]:
        """The texts whose labels' polarity model (`gold.polarity`) answers them, with no LLM call:
        those it is sure of, and on the learned route every text about one stem; the others are
        left to the LLM."""
        groups: dict[int, list[int]] = defaultdict(list)  # texts answered from the same labels go together
        for i in indices:
            knowledge = ctx.knowledge[i] if ctx.knowledge else None
            if knowledge is not None and knowledge.polarity is not None and ctx.settings.route != "llm" \
                    and complete_stems(ctx, i):
                groups[id(knowledge)].append(i)
        decided = set()
        for group in groups.values():
            knowledge = ctx.knowledge[group[0]]
            vectors = await asyncio.to_thread(knowledge.embedder.embed, [ctx.texts[i] for i in group])
            for i, (polarity, probability, sure) in zip(group, knowledge.polarity.decide(vectors)):  # type: ignore[union-attr]
                stems = complete_stems(ctx, i)
                if sure or (ctx.settings.route == "learned" and len(stems) == 1):
                    for stem in stems:
                        outcomes[i].value[format_path(None, stem)] = {
                            "polarity": polarity, **reported(probability), "reasoning": "", "excerpt": "",
                            "source": "learned"}
                    decided.add(i)
        return decided

    async def _judge(self, ctx: RunContext, stems: tuple[NodePath, ...], indices: list[int],
                     outcomes: dict[int, Outcome]) -> None:
        """Every text in `indices` has exactly `stems`: one prompt each, one answer per stem."""
        names = [format_path(None, stem) for stem in stems]
        schema = {"type": "object", "properties": {name: {"enum": list(POLARITIES)} for name in names},
                  "required": names, "additionalProperties": False}
        prompts = [stems_prompt(STEMS_POLARITY_TASK, ctx.taxonomy, stems, ctx.texts[i],
                                max_definitions=ctx.settings.max_stem_definitions) for i in indices]
        answers = await ask(ctx, prompts, schema, answer_token_bound(schema))
        for i, answer in zip(indices, answers):
            if not outcomes[i].note(self.name, answer, ", ".join(names)):
                continue
            for name in names:
                outcomes[i].value[name] = {"polarity": answer.value[name],
                                           **reported(value_probability(answer.tokens, name)),
                                           "reasoning": "", "excerpt": "", "source": "llm"}


class FlaggedStemCapability(Capability):
    """Asked per complete stem of a comment: a one-word decision, then the details of the stems
    that pass. `items_only`: a stem's wire value is the bare list (the prototype's stem_trends)."""

    requires = ("classification",)

    def __init__(self, name: str, result_key: str, sorting: Sorting, task: str, output: type[BaseModel],
                 *, items_only: bool = False) -> None:
        self.name, self.result_key, self.output, self.items_only = name, result_key, output, items_only
        self.sorting, self.task = sorting, task
        self.details = Details.of(output)
        self.max_tokens = self.details.max_tokens

    def empty(self) -> Any:
        return {}

    async def run(self, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
        definitions = ctx.settings.max_stem_definitions
        pairs = [(i, stem) for i in indices for stem in complete_stems(ctx, i)]
        questions = [stem_sorting_prompt(self.sorting.words, ctx.taxonomy, stem, ctx.texts[i],
                                         max_definitions=definitions, hint=self.sorting.hint) for i, stem in pairs]

        def detail_prompt(k: int) -> Prompt:
            i, stem = pairs[k]
            return stem_prompt(self.task, ctx.taxonomy, stem, ctx.texts[i], max_definitions=definitions)

        rulings = await decide_then_detail(ctx, self.name, self.sorting, self.details, self.output, questions,
                                           detail_prompt)
        outcomes = {i: Outcome(value={}) for i in indices}
        for (i, stem), ruling in zip(pairs, rulings):
            name = format_path(None, stem)
            if ruling.answer is None:
                outcomes[i].value[name] = self._wire(ruling.decision, None)
            elif outcomes[i].note(self.name, ruling.answer, f"{name} decision" if ruling.decision is None else name):
                outcomes[i].value[name] = self._wire(ruling.decision, ruling.answer.value)
        return outcomes

    def _wire(self, decision: Decision, answer: dict[str, Any] | None) -> Any:
        value = self.details.wire(decision, answer)
        return value[self.details.items] if self.items_only else value


stem_polarity = StemPolarityCapability()
stem_recommendations = FlaggedStemCapability(
    "stem_recommendations", "stem_recommendations", RECOMMENDATION_WORDS, STEM_RECOMMENDATIONS_TASK, StemRecommendations
)
# On the wire a stem's trends are the bare list (the prototype's shape).
stem_trend = FlaggedStemCapability("stem_trend", "stem_trends", TREND_WORDS, STEM_TRENDS_TASK, Trends, items_only=True)
