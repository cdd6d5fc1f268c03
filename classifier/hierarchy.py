"""HierarchicalClassifier: walks the topic tree level by level for many texts at once.

On each level every text that is still walking stands on a node. Texts on the same node
share one batched processor call (one prompt per text, same prefix); all calls of a level
go out concurrently. Texts are tracked by index, so equal texts get separate results.

Four strategies:
- `select`: one prompt per (text, node): the schema's enum is the node's children plus
  "none of these"; every chosen child is walked next.
- `per_node` (the prototype's walk): one yes/no prompt per (text, child), accepted by the
  confidence and excerpt policies.
- `score`: one prompt per (text, node) listing the children as lettered options; the model
  writes one letter and the probability of every letter is read back, so every child gets
  a score; the children reaching `min_probability` are walked next (at most `max_paths`).
- `flat` (small trees): one `select`-form call per text naming complete stems by their
  paths; a node's probability is the sum of its named stems', and nodes are accepted
  top-down by the same threshold.

`select`, `score` and `flat` accept a child when its probability (calibrated per level,
with a calibration) reaches `min_probability`, and report that probability.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .calibration import accepted_children, decide
from .outputs import NodeRelevance
from .llm.base import ItemResult, JSONSchema, Processor, Prompt, in_batches, process_in_batches
from .llm.schema import answer_token_bound, schema_for
from .llm.probabilities import TOP_LOGPROBS, listed_probabilities, value_probability
from .prompts import NONE_OF_THESE, flat_prompt, relevance_prompt, score_prompt, select_prompt
from .settings import ClassifierSettings
from .taxonomy import NodePath, Taxonomy, format_path

if TYPE_CHECKING:
    from .gold.knowledge import Guidance

STRATEGIES = ("select", "per_node", "score", "flat")
MAX_OPTIONS = TOP_LOGPROBS - 1  # the engines return this many alternatives; one is "none of these"


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


def reported(probability: float | None) -> dict[str, Any]:
    """A probability as answers report it: `confidence` 1-5 and `probability` 0-1. None
    (the backend returned no token log-probabilities) reports confidence 3."""
    return {"confidence": 3 if probability is None else confidence_of(probability),
            "probability": None if probability is None else round(probability, 4)}


def node_result(probability: float | None, reasoning: str = "", excerpt: str = "", source: str = "llm",
                ) -> dict[str, Any]:
    """An accepted node with the keys every strategy reports; `source` says what decided it:
    the LLM, the classifier learned from the taxonomy's gold, or the gold itself (a comment
    labelled already; `gold.knowledge`)."""
    return {"is_relevant": True, **reported(probability), "reasoning": reasoning, "excerpt": excerpt,
            "source": source}


class HierarchicalClassifier:
    """Classifies texts into a taxonomy through any `Processor`."""

    def __init__(self, processor: Processor, settings: ClassifierSettings, guidance: Guidance | None = None) -> None:
        if settings.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {settings.strategy!r}; choose one of {STRATEGIES}")
        self.processor = processor
        self.settings = settings
        self.guidance = guidance  # what the taxonomy's gold says of these texts (the select walk reads it)

    async def classify(self, texts: Sequence[str], taxonomy: Taxonomy) -> list[TextClassification]:
        """One `TextClassification` per text, in order."""
        results = [TextClassification() for _ in texts]
        twins = self.guidance.twins if self.guidance else {}
        for i, stems in twins.items():  # labelled already: the label is the answer
            for path in {stem[:depth] for stem in stems for depth in range(1, len(stem) + 1)}:
                results[i].accepted.append(path)
                results[i].node_results[path] = node_result(1.0, source="gold")
        if self.settings.strategy == "flat":
            await self._flat(taxonomy, texts, results)
        else:
            await self._walk(taxonomy, texts, results, [i for i in range(len(texts)) if i not in twins])
        for result in results:
            result.accepted = taxonomy.in_file_order(set(result.accepted))
        return results

    async def _walk(self, taxonomy: Taxonomy, texts: Sequence[str], results: list[TextClassification],
                    walking: list[int]) -> None:
        """Level by level: every group of texts standing on one node is asked about its children."""
        frontier: dict[NodePath, list[int]] = {(): walking} if walking else {}
        walk = {"select": self._select_group, "per_node": self._per_node_group,
                "score": self._score_group}[self.settings.strategy]
        while frontier:
            groups = [(path, idx) for path, idx in frontier.items() if not taxonomy.node(path).is_leaf]
            found = await asyncio.gather(*(walk(taxonomy, path, idx, texts, results) for path, idx in groups))
            frontier = defaultdict(list)
            for accepted in found:
                for path, i in accepted:
                    frontier[path].append(i)

    def calibrated(self, path: NodePath, probability: float) -> float:
        """The probability a decision uses: calibrated by the node's map or its level's, if any."""
        calibration = self.settings.calibration
        return calibration.apply(path, probability) if calibration else probability

    async def _select_group(
        self,
        taxonomy: Taxonomy,
        path: NodePath,
        indices: list[int],
        texts: Sequence[str],
        results: list[TextClassification],
    ) -> list[tuple[NodePath, int]]:
        """The children of `path` chosen for every text standing on it: those the learned
        classifier decides alone (with a guidance), then one batched call per set of children
        left to the LLM."""
        children = [c.name for c in taxonomy.node(path).children]
        accepted, asked = [], defaultdict(list)
        for i in indices:
            known, left = self.guidance.split(i, path, children) if self.guidance else ([], children)
            for child, probability in known[: self.settings.max_paths]:
                results[i].accepted.append(child)
                results[i].node_results[child] = node_result(probability, source="learned")
                accepted.append((child, i))
            if left:
                asked[tuple(left)].append(i)
        for found in await asyncio.gather(*(self._ask_select(taxonomy, path, list(options), group, texts, results)
                                            for options, group in asked.items())):
            accepted.extend(found)
        return accepted

    async def _ask_select(self, taxonomy: Taxonomy, path: NodePath, children: list[str], indices: list[int],
                          texts: Sequence[str], results: list[TextClassification]) -> list[tuple[NodePath, int]]:
        """One batched call asking every text in `indices` which of `children` of `path` it is about."""
        s = self.settings
        schema = select_schema(children, max_paths=s.max_paths, reasoning=s.reasoning)
        prompts = [
            select_prompt(taxonomy, path, texts[i], max_paths=s.max_paths, reasoning=s.reasoning, few_shot=s.few_shot,
                          only=children, labelled=self.guidance.labelled(i, path, children) if self.guidance else ())
            for i in indices
        ]
        answers = await self._process(prompts, schema, answer_token_bound(schema))
        accepted = []
        for i, answer in zip(indices, answers):
            if not self._record(results[i], path, answer):
                continue
            for child, probability in self._picked(path, answer):
                results[i].accepted.append(child)
                results[i].node_results[child] = node_result(probability, answer.value.get("reason", ""))
                accepted.append((child, i))
        return accepted

    def _picked(self, path: NodePath, answer: ItemResult) -> Sequence[tuple[NodePath, float | None]]:
        """The children a `select` answer names that are accepted, with the (calibrated)
        probability the model gave to writing each: those reaching `min_probability`, at most
        `max_paths`. Without token log-probabilities, the first `max_paths` named."""
        named, raw = self._named(answer, lambda name: path + (name,))
        if raw is None:
            return [(child, None) for child in named[: self.settings.max_paths]]
        scored = {child: self.calibrated(child, raw[child]) for child in named}
        return accepted_children(scored, self.settings.min_probability, self.settings.max_paths)

    @staticmethod
    def _named(answer: ItemResult, path_of: Callable[[str], NodePath],
               ) -> tuple[list[NodePath], dict[NodePath, float] | None]:
        """The nodes a select-form answer names, in order without repeats, and the raw
        probability the model gave to writing each (at its first writing); None without
        token log-probabilities."""
        topics = answer.value["topics"]
        named = list(dict.fromkeys(path_of(t) for t in topics if t != NONE_OF_THESE))
        raw = listed_probabilities(answer.tokens, "topics")
        if raw is None or len(raw) != len(topics):
            return named, None
        first: dict[NodePath, float] = {}
        for topic, p in zip(topics, raw):
            if topic != NONE_OF_THESE:
                first.setdefault(path_of(topic), p)
        return named, first

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
        children = [path + (c.name,) for c in taxonomy.node(path).children]
        try:
            built = [score_prompt(taxonomy, path, texts[i], MAX_OPTIONS) for i in indices]
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
            scored = {child: self.calibrated(child, answer.value["probabilities"][letter])
                      for letter, child in zip(letters, children)}
            for child, probability in accepted_children(scored, s.min_probability, s.max_paths):
                results[i].accepted.append(child)
                results[i].node_results[child] = node_result(probability)
                accepted.append((child, i))
        return accepted

    async def _flat(self, taxonomy: Taxonomy, texts: Sequence[str], results: list[TextClassification]) -> None:
        """One select-form call per text over every complete stem, named by its path; a
        node's probability is the sum of its named stems', and nodes are accepted top-down."""
        s = self.settings
        stems = {format_path(None, stem): stem for stem in taxonomy.leaf_paths()}
        schema = select_schema(list(stems), max_paths=s.max_paths, reasoning=s.reasoning)
        prompts = [flat_prompt(taxonomy, text, max_paths=s.max_paths, reasoning=s.reasoning) for text in texts]
        answers = await self._process(prompts, schema, answer_token_bound(schema))
        for result, answer in zip(results, answers):
            if not self._record(result, (), answer):
                continue
            named, raw = self._named(answer, stems.__getitem__)
            probabilities: dict[NodePath, float | None]
            if raw is None:
                accepted = {stem[:depth] for stem in named[: s.max_paths] for depth in range(1, len(stem) + 1)}
                probabilities = dict.fromkeys(accepted)
            else:
                sums: dict[NodePath, float] = defaultdict(float)
                for stem, p in raw.items():
                    for depth in range(1, len(stem) + 1):
                        sums[stem[:depth]] += p
                calibrated = {path: self.calibrated(path, min(1.0, p)) for path, p in sums.items()}
                accepted, probabilities = decide(calibrated, s.min_probability, s.max_paths), dict(calibrated)
            for path in accepted:
                result.accepted.append(path)
                result.node_results[path] = node_result(probabilities[path], answer.value.get("reason", ""))

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
                    results[i].node_results[child] = {**answer.value, "probability": self._relevance(child, answer),
                                                      "source": "llm"}
                    accepted.append((child, i))
        return accepted

    def _relevance(self, child: NodePath, answer: ItemResult) -> float | None:
        """The probability the model gave to `is_relevant: true` (calibrated), if tokens came back."""
        p = value_probability(answer.tokens, "is_relevant")
        return None if p is None else round(self.calibrated(child, p), 4)

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
