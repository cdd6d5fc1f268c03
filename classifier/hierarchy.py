"""HierarchicalClassifier: walks the topic tree level by level for many texts at once.

On each level every text that is still walking stands on a node. Texts on the same node
share one batched processor call (one prompt per text, same prefix); all calls of a level
go out concurrently. Texts are tracked by index, so equal texts get separate results.

Three strategies:
- `select`: one prompt per (text, node): the schema's enum is the node's children plus
  "none of these"; every chosen child is walked next.
- `per_node` (the prototype's walk): one yes/no prompt per (text, child), accepted by the
  confidence and excerpt policies.
- `score`: one prompt per (text, node) listing the children as lettered options; the model
  writes one letter and the probability of every letter is read back, so every child gets
  a score; the children reaching `min_probability` are walked next (at most `max_paths`).
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from .outputs import NodeRelevance
from .llm.base import ItemResult, JSONSchema, Processor, Prompt, in_batches, process_in_batches
from .llm.schema import answer_token_bound, schema_for
from .prompts import NONE_OF_THESE, relevance_prompt, score_prompt, select_prompt
from .settings import ClassifierSettings
from .taxonomy import NodePath, Taxonomy

STRATEGIES = ("select", "per_node", "score")


@dataclass
class TextClassification:
    """What the walk found for one text: accepted nodes and what each answer said."""

    accepted: list[NodePath] = field(default_factory=list)
    node_results: dict[NodePath, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    truncated: bool = False


def select_schema(children: Sequence[str], *, max_paths: int, reasoning: bool) -> JSONSchema:
    """The `select` answer: a non-empty list drawn from exactly these children or "none"."""
    properties: dict[str, Any] = {
        "topics": {
            "type": "array",
            "items": {"type": "string", "enum": [*children, NONE_OF_THESE]},
            "minItems": 1,
            "maxItems": max_paths,
        }
    }
    if reasoning:
        properties["reason"] = {"type": "string", "maxLength": 200}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


RELEVANCE_SCHEMA = schema_for(NodeRelevance)
RELEVANCE_MAX_TOKENS = answer_token_bound(RELEVANCE_SCHEMA)


def confidence_of(probability: float) -> int:
    """The prototype's 1-5 confidence from a probability: fifths of [0, 1]."""
    return min(5, 1 + int(probability * 5))


def node_result(probability: float) -> dict[str, Any]:
    """An accepted node as the `score` walk reports it (the keys every strategy's consumers read)."""
    return {"is_relevant": True, "confidence": confidence_of(probability), "probability": round(probability, 4),
            "reasoning": "", "excerpt": ""}


class HierarchicalClassifier:
    """Classifies texts into a taxonomy through any `Processor`."""

    def __init__(self, processor: Processor, settings: ClassifierSettings) -> None:
        if settings.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {settings.strategy!r}; choose one of {STRATEGIES}")
        self.processor = processor
        self.settings = settings

    async def classify(self, texts: Sequence[str], taxonomy: Taxonomy) -> list[TextClassification]:
        """One `TextClassification` per text, in order."""
        results = [TextClassification() for _ in texts]
        frontier: dict[NodePath, list[int]] = {(): list(range(len(texts)))}
        while frontier:
            groups = [(path, idx) for path, idx in frontier.items() if not taxonomy.node(path).is_leaf]
            walk = {"select": self._select_group, "per_node": self._per_node_group,
                    "score": self._score_group}[self.settings.strategy]
            found = await asyncio.gather(*(walk(taxonomy, path, idx, texts, results) for path, idx in groups))
            frontier = defaultdict(list)
            for accepted in found:
                for path, i in accepted:
                    frontier[path].append(i)
        for result in results:
            result.accepted = taxonomy.in_file_order(set(result.accepted))
        return results

    async def _select_group(
        self,
        taxonomy: Taxonomy,
        path: NodePath,
        indices: list[int],
        texts: Sequence[str],
        results: list[TextClassification],
    ) -> list[tuple[NodePath, int]]:
        """One batched call for every text on `path`; returns the (child, text) pairs chosen."""
        s = self.settings
        children = [c.name for c in taxonomy.node(path).children]
        schema = select_schema(children, max_paths=s.max_paths, reasoning=s.reasoning)
        prompts = [
            select_prompt(taxonomy, path, texts[i], max_paths=s.max_paths, reasoning=s.reasoning, few_shot=s.few_shot)
            for i in indices
        ]
        answers = await self._process(prompts, schema, answer_token_bound(schema))
        accepted = []
        for i, answer in zip(indices, answers):
            if not self._record(results[i], path, answer):
                continue
            picked = [t for t in dict.fromkeys(answer.value["topics"]) if t != NONE_OF_THESE]
            for name in picked[: s.max_paths]:
                child = path + (name,)
                results[i].accepted.append(child)
                results[i].node_results[child] = {"is_relevant": True, "reasoning": answer.value.get("reason", "")}
                accepted.append((child, i))
        return accepted

    async def _score_group(
        self,
        taxonomy: Taxonomy,
        path: NodePath,
        indices: list[int],
        texts: Sequence[str],
        results: list[TextClassification],
    ) -> list[tuple[NodePath, int]]:
        """One batched one-letter call for every text on `path`; returns the (child, text)
        pairs whose probability reaches `min_probability`, most probable first."""
        s = self.settings
        children = [c.name for c in taxonomy.node(path).children]
        try:
            built = [score_prompt(taxonomy, path, texts[i]) for i in indices]
        except ValueError as exc:
            for i in indices:
                results[i].errors.append(f"classification at {'>'.join(path) or 'the root'}: {exc}")
            return []
        prompts, letters = [prompt for prompt, _ in built], built[0][1]
        answers = await in_batches(lambda part: self.processor.process_choice(part, letters), prompts, s.batch_size)
        accepted = []
        for i, answer in zip(indices, answers):
            if not self._record(results[i], path, answer):
                continue
            scored = sorted(((answer.value["probabilities"][letter], name) for letter, name in zip(letters, children)),
                            reverse=True)
            for probability, name in [(p, n) for p, n in scored if p >= s.min_probability][: s.max_paths]:
                child = path + (name,)
                results[i].accepted.append(child)
                results[i].node_results[child] = node_result(probability)
                accepted.append((child, i))
        return accepted

    async def _per_node_group(
        self,
        taxonomy: Taxonomy,
        path: NodePath,
        indices: list[int],
        texts: Sequence[str],
        results: list[TextClassification],
    ) -> list[tuple[NodePath, int]]:
        """One batched call per child of `path`, each over every text standing on `path`."""
        children = [path + (c.name,) for c in taxonomy.node(path).children]
        answers = await asyncio.gather(
            *(
                self._process([relevance_prompt(taxonomy, child, texts[i]) for i in indices], RELEVANCE_SCHEMA, RELEVANCE_MAX_TOKENS)
                for child in children
            )
        )
        accepted = []
        for child, child_answers in zip(children, answers):
            for i, answer in zip(indices, child_answers):
                if self._record(results[i], child, answer) and self._relevant(answer.value, texts[i]):
                    results[i].accepted.append(child)
                    results[i].node_results[child] = answer.value
                    accepted.append((child, i))
        return accepted

    def _relevant(self, answer: dict[str, Any], text: str) -> bool:
        """The prototype's acceptance policy for a per-node answer."""
        if not answer["is_relevant"] or answer["confidence"] < self.settings.min_confidence:
            return False
        excerpt = answer["excerpt"].strip().lower()
        return not self.settings.require_excerpt or (bool(excerpt) and excerpt in text.lower())

    @staticmethod
    def _record(result: TextClassification, path: NodePath, answer: ItemResult) -> bool:
        """Note an answer's error or truncation on the text; True when it can be used."""
        result.truncated |= answer.truncated
        if not answer.ok:
            result.errors.append(f"classification at {'>'.join(path) or 'the root'}: {answer.error}")
        return answer.ok

    async def _process(self, prompts: list[Prompt], schema: JSONSchema, max_tokens: int) -> list[ItemResult]:
        return await process_in_batches(
            self.processor, prompts, schema, max_tokens=max_tokens, batch_size=self.settings.batch_size
        )
