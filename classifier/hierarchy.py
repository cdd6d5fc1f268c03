"""HierarchicalClassifier: walks the topic tree, each text on its own path.

Each text walks by itself: a node's question is asked as soon as the text was accepted
into it, whatever the other texts (and the text's other branches) are doing, so one slow
answer holds back only what depends on it. The backend batches whatever is in flight
(continuous batching), so texts standing on one node still share a batch and its prefix.
Texts are tracked by index, so equal texts get separate results.

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
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence

from .calibration import accepted_children, decide
from .outputs import NodeRelevance
from .llm.base import ItemResult, JSONSchema, Processor, Prompt, process_in_batches
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
    labelled: bool = False  # answered by a label (its text, or a near duplicate, was labelled), not walked
    asked: bool = False  # the LLM was asked about it at least once


# One text's question at one node: the children accepted, recorded on the text's result.
Step = Callable[[Taxonomy, NodePath, int, Sequence[str], list[TextClassification]], Awaitable[list[NodePath]]]


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


def node_prompts(taxonomy: Taxonomy, s: ClassifierSettings, comment: str) -> list[Prompt]:
    """Each question the strategy's walk may ask about `comment` (all of a node's children, no
    gold): their instructions are the same for every comment."""
    if s.strategy == "flat":
        return [flat_prompt(taxonomy, comment, max_paths=s.max_paths, reasoning=s.reasoning)]
    if s.strategy == "per_node":
        return [relevance_prompt(taxonomy, path, comment) for path, _ in taxonomy.nodes()]
    inner = [(), *(path for path, node in taxonomy.nodes() if not node.is_leaf)]
    if s.strategy == "score":
        return [score_prompt(taxonomy, path, comment, MAX_OPTIONS)[0] for path in inner]
    return [select_prompt(taxonomy, path, comment, max_paths=s.max_paths, reasoning=s.reasoning, few_shot=s.few_shot)
            for path in inner]


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
            results[i].labelled = True
            for path in {stem[:depth] for stem in stems for depth in range(1, len(stem) + 1)}:
                results[i].accepted.append(path)
                results[i].node_results[path] = node_result(1.0, source=self.guidance.knowledge.source)
        if self.settings.strategy == "flat":
            await asyncio.gather(*(self._flat(taxonomy, text, result) for text, result in zip(texts, results)))
        else:
            step = {"select": self._select, "per_node": self._per_node, "score": self._score}[self.settings.strategy]
            await asyncio.gather(*(self._walk(taxonomy, (), i, texts, results, step)
                                   for i in range(len(texts)) if i not in twins))
        for result in results:
            result.accepted = taxonomy.in_file_order(set(result.accepted))
        return results

    async def _walk(self, taxonomy: Taxonomy, path: NodePath, i: int, texts: Sequence[str],
                    results: list[TextClassification], step: Step) -> None:
        """Text `i`'s walk below `path`: its children are asked about, and each child accepted
        is walked on at once, whatever the other texts and the other branches are doing."""
        if taxonomy.node(path).is_leaf:
            return
        accepted = await step(taxonomy, path, i, texts, results)
        await asyncio.gather(*(self._walk(taxonomy, child, i, texts, results, step) for child in accepted))

    def calibrated(self, path: NodePath, probability: float) -> float:
        """The probability a decision uses: calibrated by the node's map or its level's, if any."""
        calibration = self.settings.calibration
        return calibration.apply(path, probability) if calibration else probability

    async def _select(self, taxonomy: Taxonomy, path: NodePath, i: int, texts: Sequence[str],
                      results: list[TextClassification]) -> list[NodePath]:
        """The children of `path` chosen for text `i`: those the learned classifier decides
        alone (with a guidance), then those the LLM picks among the rest."""
        children = [c.name for c in taxonomy.node(path).children]
        known, left = self.guidance.split(i, path, children) if self.guidance else ([], children)
        accepted = []
        for child, probability in known[: self.settings.max_paths]:
            results[i].accepted.append(child)
            results[i].node_results[child] = node_result(probability, source="learned")
            accepted.append(child)
        if left:
            accepted += await self._ask_select(taxonomy, path, left, i, texts, results)
        return accepted

    async def _ask_select(self, taxonomy: Taxonomy, path: NodePath, children: list[str], i: int,
                          texts: Sequence[str], results: list[TextClassification]) -> list[NodePath]:
        """Ask which of `children` of `path` text `i` is about."""
        s = self.settings
        schema = select_schema(children, max_paths=s.max_paths, reasoning=s.reasoning)
        prompt = select_prompt(taxonomy, path, texts[i], max_paths=s.max_paths, reasoning=s.reasoning,
                               few_shot=s.few_shot, only=children,
                               labelled=self.guidance.labelled(i, path, children) if self.guidance else ())
        [answer] = await self._process([prompt], schema, answer_token_bound(schema))
        if not self._record(results[i], path, answer):
            return []
        accepted = []
        for child, probability in self._picked(path, answer):
            results[i].accepted.append(child)
            results[i].node_results[child] = node_result(probability, answer.value.get("reason", ""))
            accepted.append(child)
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

    async def _score(self, taxonomy: Taxonomy, path: NodePath, i: int, texts: Sequence[str],
                     results: list[TextClassification]) -> list[NodePath]:
        """One one-letter question to text `i` on `path`; the children whose probability
        reaches `min_probability`, most probable first."""
        s = self.settings
        children = [path + (c.name,) for c in taxonomy.node(path).children]
        try:
            prompt, letters = score_prompt(taxonomy, path, texts[i], MAX_OPTIONS)
        except ValueError as exc:
            results[i].errors.append(f"classification at {'>'.join(path) or 'the root'}: {exc}")
            return []
        [answer] = await self.processor.process_choice([prompt], letters)
        if not self._record(results[i], path, answer):
            return []
        probabilities = answer.value["probabilities"]
        if probabilities is None:  # a server without log-probabilities: the letter it wrote decides
            chosen = dict(zip(letters, children)).get(answer.value["choice"])
            if chosen is not None:
                results[i].accepted.append(chosen)
                results[i].node_results[chosen] = node_result(None)
            return [chosen] if chosen is not None else []
        scored = {child: self.calibrated(child, probabilities[letter]) for letter, child in zip(letters, children)}
        accepted = []
        for child, probability in accepted_children(scored, s.min_probability, s.max_paths):
            results[i].accepted.append(child)
            results[i].node_results[child] = node_result(probability)
            accepted.append(child)
        return accepted

    async def _flat(self, taxonomy: Taxonomy, text: str, result: TextClassification) -> None:
        """One select-form question over every complete stem, named by its path; a node's
        probability is the sum of its named stems', and nodes are accepted top-down."""
        s = self.settings
        stems = {format_path(None, stem): stem for stem in taxonomy.leaf_paths()}
        schema = select_schema(list(stems), max_paths=s.max_paths, reasoning=s.reasoning)
        prompt = flat_prompt(taxonomy, text, max_paths=s.max_paths, reasoning=s.reasoning)
        [answer] = await self._process([prompt], schema, answer_token_bound(schema))
        if not self._record(result, (), answer):
            return
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

    async def _per_node(self, taxonomy: Taxonomy, path: NodePath, i: int, texts: Sequence[str],
                        results: list[TextClassification]) -> list[NodePath]:
        """One yes/no question to text `i` per child of `path`, all in one call."""
        children = [path + (c.name,) for c in taxonomy.node(path).children]
        answers = await self._process([relevance_prompt(taxonomy, child, texts[i]) for child in children],
                                      RELEVANCE_SCHEMA, RELEVANCE_MAX_TOKENS)
        accepted = []
        for child, answer in zip(children, answers):
            if self._record(results[i], child, answer) and self._relevant(answer.value, texts[i]):
                results[i].accepted.append(child)
                results[i].node_results[child] = {**answer.value, "probability": self._relevance(child, answer),
                                                  "source": "llm"}
                accepted.append(child)
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
        result.asked = True
        result.truncated |= answer.truncated
        if not answer.ok:
            result.errors.append(f"classification at {'>'.join(path) or 'the root'}: {answer.error}")
        return answer.ok

    async def _process(self, prompts: list[Prompt], schema: JSONSchema, max_tokens: int) -> list[ItemResult]:
        return await process_in_batches(
            self.processor, prompts, schema, max_tokens=max_tokens, batch_size=self.settings.batch_size
        )
