"""The `classification` capability: the hierarchical walk, rendered in the prototype's shape."""
from __future__ import annotations

import asyncio
from typing import Iterable

from ..hierarchy import HierarchicalClassifier, TextClassification, node_prompts
from ..llm.base import Prompt
from ..settings import ClassifierSettings
from ..taxonomy import NodePath, Taxonomy, format_path
from .base import Capability, Outcome, RunContext


class Classification(Capability):
    name = "classification"
    result_key = "classification_result"

    def empty(self) -> dict:
        return {"classification_paths": [], "node_results": {}}

    def fixed_prompts(self, taxonomy: Taxonomy, settings: ClassifierSettings, comment: str) -> list[Prompt]:
        """Every node's question, as the walk asks it before the gold narrows it."""
        return node_prompts(taxonomy, settings, comment)

    async def run(self, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
        groups: dict[int, list[int]] = {}  # texts answered from the same labels go together
        for i in indices:
            groups.setdefault(id(ctx.knowledge[i]) if ctx.knowledge else 0, []).append(i)
        outcomes: dict[int, Outcome] = {}
        for group in await asyncio.gather(*(self._run(ctx, group) for group in groups.values())):
            outcomes.update(group)
        return outcomes

    async def _run(self, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
        texts = [ctx.texts[i] for i in indices]
        s = ctx.settings
        knowledge = ctx.knowledge[indices[0]] if ctx.knowledge else None
        guided = knowledge is not None and s.strategy == "select"  # the other walks do not read gold
        guidance = await knowledge.guide(texts, examples=s.examples, route=s.route) if guided else None
        found = await HierarchicalClassifier(ctx.processor, s, guidance).classify(texts, ctx.taxonomy)
        outcomes = {}
        for i, result in zip(indices, found):
            ctx.classifications[i] = result
            outcomes[i] = Outcome(
                value={
                    "classification_paths": [format_path(ctx.prefixes[i], p) for p in result.accepted],
                    "node_results": node_results(result),
                    **({"source": decided_by(result, knowledge.source)} if guided and knowledge else {}),
                },
                errors=result.errors,
                truncated=result.truncated,
            )
        return outcomes


def decided_by(result: TextClassification, labels: str) -> str:
    """Who answered a text whose taxonomy has labels: the labels themselves (`labels`: gold or
    silver; also when the label holds no topic), the learned classifier alone, or the LLM (asked
    at least once, whatever it accepted)."""
    return labels if result.labelled else "llm" if result.asked else "learned"


def node_keys(paths: Iterable[NodePath]) -> dict[NodePath, str]:
    """How `node_results` keys one text's accepted nodes: by name, as the prototype did; a
    name that occurs twice among them (`General` under two parents) by its stem instead."""
    paths = list(paths)
    names = [p[-1] for p in paths]
    return {p: p[-1] if names.count(p[-1]) == 1 else format_path(None, p) for p in paths}


def node_results(result: TextClassification) -> dict[str, dict]:
    """Each accepted node's answer, keyed as `node_keys` says."""
    return {key: result.node_results[p] for p, key in node_keys(result.accepted).items()}
