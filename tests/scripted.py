"""A scripted, zero-latency Processor for unit tests of logic (never a proof that a
backend works: the real-engine tests do that).

`answer(prompt, schema)` returns the parsed value for one prompt, a `str` error that
becomes that item's `ItemResult` error, or a whole `ItemResult`. Every call is recorded.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from classifier.llm.base import Health, ItemResult, JSONSchema, Prompt, Usage
from classifier.llm.fairness import requester
from classifier.prompts import NONE_OF_THESE
from classifier.taxonomy import PATH_SEPARATOR, NodePath

Answer = Callable[[Prompt, JSONSchema], "dict[str, Any] | str"]


@dataclass
class Call:
    prompts: list[Prompt]
    schema: JSONSchema
    max_tokens: int
    requester: str = field(default_factory=requester.get)  # who the call was made for (`llm.fairness`)


@dataclass
class ScriptedProcessor:
    answer: Answer
    count_tokens: Callable[[Prompt], int] = lambda p: len(p.instructions.split()) + len(p.comment.split())
    backend: str = "scripted"
    model: str = "scripted"
    usage: Usage = field(default_factory=Usage)
    calls: list[Call] = field(default_factory=list)

    async def process_with_schema(
        self, prompts: Sequence[Prompt], schema: JSONSchema, *, max_tokens: int = 256
    ) -> list[ItemResult]:
        self.calls.append(Call(list(prompts), schema, max_tokens))
        results = []
        for prompt in prompts:
            self.usage.llm_calls += 1
            self.usage.prompt_tokens += self.count_tokens(prompt)
            out = self.answer(prompt, schema)
            if isinstance(out, ItemResult):  # a whole result, tokens and all
                results.append(out)
                continue
            results.append(ItemResult.failure(out) if isinstance(out, str) else ItemResult(value=out))
            self.usage.errors += isinstance(out, str)
        return results

    async def process_choice(self, prompts: Sequence[Prompt], options: Sequence[str]) -> list[ItemResult]:
        """`answer(prompt, {"options": [...]})` returns the probabilities (a dict) or an error."""
        schema = {"options": list(options)}
        self.calls.append(Call(list(prompts), schema, 1))
        results = []
        for prompt in prompts:
            self.usage.llm_calls += 1
            out = self.answer(prompt, schema)
            if isinstance(out, str):
                results.append(ItemResult.failure(out))
                continue
            probabilities = {option: float(out.get(option, 0.0)) for option in options}
            results.append(ItemResult(value={"choice": max(probabilities, key=probabilities.get),
                                             "probabilities": probabilities}))
        return results

    async def health(self, *, probe: bool = True) -> Health:
        return Health(ok=True, backend=self.backend, model=self.model)

    async def close(self) -> None:
        pass

    @property
    def prompts(self) -> list[Prompt]:
        return [p for call in self.calls for p in call.prompts]


def topic_path(prompt: Prompt) -> NodePath:
    """The node a classification prompt stands on, read from its `Topic path:` line (root dropped)."""
    match = re.search(r"^Topic path: (.*)$", prompt.instructions, re.MULTILINE)
    assert match, f"no topic path in prompt: {prompt.instructions[:200]}"
    return tuple(match.group(1).split(PATH_SEPARATOR)[1:])


def oracle(gold: dict[str, Iterable[NodePath]], fallback: Answer | None = None) -> Answer:
    """Answers classification prompts correctly from `gold` (comment -> stems); other
    prompts go to `fallback`. Works for both walk strategies."""
    gold_sets = {text: set(paths) for text, paths in gold.items()}

    def under(prefix: NodePath, text: str) -> bool:
        return any(p[: len(prefix)] == prefix for p in gold_sets.get(text, ()))

    def answer(prompt: Prompt, schema: JSONSchema) -> dict[str, Any] | str:
        props = schema.get("properties", {})
        if "topics" in props:
            here = topic_path(prompt)
            offered = [c for c in props["topics"]["items"]["enum"] if c != NONE_OF_THESE]
            picked = [c for c in offered if under(here + (c,), prompt.comment)]
            return {"topics": picked or [NONE_OF_THESE], "reason": "scripted"}
        if "is_relevant" in props:
            relevant = under(topic_path(prompt), prompt.comment)
            return {"is_relevant": relevant, "confidence": 5, "reasoning": "scripted", "excerpt": ""}
        assert fallback, f"no scripted answer for schema {sorted(props)}"
        return fallback(prompt, schema)

    return answer


# Probabilities the model gives each child, per node (by name), for the `score` walk.
SCORES = {
    (): {"Delivery": 0.6, "Logistics": 0.35, "Content": 0.04, NONE_OF_THESE: 0.01},
    ("Delivery",): {"Pace": 0.9, "Clarity": 0.05, NONE_OF_THESE: 0.05},
    ("Logistics",): {"Catering": 0.5, "Venue": 0.3, NONE_OF_THESE: 0.2},
}


def lettered(prompt) -> dict[str, str]:
    """Option label -> its letter, read off a one-letter prompt's options."""
    named = {}
    for line in prompt.instructions.splitlines():
        letter, dot, rest = line.partition(". ")
        if dot and len(letter) == 1:
            named[rest.split(":")[0]] = letter
    return named


def scored(prompt, schema):
    """Letter -> probability for a `score` prompt."""
    named = lettered(prompt)
    return {named[name]: p for name, p in SCORES[topic_path(prompt)].items()}


@dataclass
class HoldingProcessor(ScriptedProcessor):
    """A `ScriptedProcessor` that holds back every call with a prompt `held` picks until
    `release` is set: what goes on meanwhile is what does not wait for that answer."""

    held: Callable[[Prompt, JSONSchema], bool] = lambda prompt, schema: False
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def _hold(self, prompts: Sequence[Prompt], schema: JSONSchema) -> None:
        if any(self.held(p, schema) for p in prompts):
            await self.release.wait()

    async def process_with_schema(
        self, prompts: Sequence[Prompt], schema: JSONSchema, *, max_tokens: int = 256
    ) -> list[ItemResult]:
        await self._hold(prompts, schema)
        return await super().process_with_schema(prompts, schema, max_tokens=max_tokens)

    async def process_choice(self, prompts: Sequence[Prompt], options: Sequence[str]) -> list[ItemResult]:
        await self._hold(prompts, {"options": list(options)})
        return await super().process_choice(prompts, options)


async def until(condition: Callable[[], bool], turns: int = 1000) -> None:
    """Let other tasks run until `condition` holds (within `turns` passes of the event loop)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held while the answer was held back")
