"""Deciding before detailing: whether a comment holds anything of a capability's kind.

Most comments hold no alert, no recommendation and no trend. Asked for the details straight
away, a small model invents some (a high-severity alert for "Lunch was cold"), and a list it
wrote used to win over its own `false`. So every such capability first asks which one word
describes the comment best, among words for what it looks for ("harassment", "danger", ...)
and words for ordinary comments ("praise", "complaint", ...), answered in one token under a
choice grammar. The probability of the first kind, read from that token's log-probabilities
(and mapped through the capability's calibration), is compared with the capability's
threshold. Only the comments that pass are asked for the details, under a schema whose list
cannot be empty: the flag and the list always agree.

Why words and not yes/no: asked "does the comment report something that needs an alert?",
the 1.5B model answered "Yes" to "The food was great" (probability .59); sorting the same
comments among words separated them (docs/eval-results.md, section 9).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from pydantic import BaseModel

from ..calibration import FlagCalibration
from ..llm.base import ItemResult, JSONSchema, Prompt, in_batches
from ..llm.schema import answer_token_bound, schema_for
from .base import RunContext, ask, validated

# The threshold a capability gets when no calibration names it: even odds on the raw probability.
DEFAULT_FLAG = FlagCalibration(0.5, source="default: no calibration for this capability")


@dataclass(frozen=True)
class Sorting:
    """A capability's one-word decision: words for what it looks for, words for everything else.
    Their first tokens should differ between the two groups (a shared one is split between them)."""

    found: tuple[str, ...]
    other: tuple[str, ...]
    hint: str = ""  # a sentence for the instructions, where the words alone mislead the model

    @property
    def words(self) -> tuple[str, ...]:
        return self.other + self.found

    def probability(self, probabilities: Mapping[str, float]) -> float:
        return sum(probabilities[word] for word in self.found)


# Ordinary comments, as every capability's decision offers them beside its own words.
ORDINARY = ("praise", "complaint", "request", "question", "description", "opinion")
# "description" drew plainly told incidents ("the driver stroked my legs") away from the
# alert words; the hint brought them back (docs/eval-results.md, section 9).
ALERT_WORDS = Sorting(("harassment", "violence", "threat", "danger", "discrimination", "bullying", "fraud", "crisis"),
                      ("praise", "complaint", "request", "question", "opinion"),
                      "Someone touched, groped, followed, stared at, hurt, threatened or insulted is harassment, "
                      "violence or a threat, however plainly it is told.")
RECOMMENDATION_WORDS = Sorting(("request", "suggestion", "wish"),
                               ("complaint", "praise", "question", "problem", "fact", "experience"))
TREND_WORDS = Sorting(("decline", "improvement", "change"), ORDINARY)


@dataclass(frozen=True)
class Decision:
    """One comment's answer to a capability's question."""

    passed: bool
    # Of the words for what the capability looks for, calibrated where it has a map. None: the
    # server gave no log-probabilities, and the word it chose decided alone.
    probability: float | None
    source: str = "llm"  # llm, or what the owner's flag labels decided with: gold (a labelled text), learned


async def decide(ctx: RunContext, capability: str, sorting: Sorting,
                 prompts: Sequence[Prompt]) -> list[Decision | ItemResult]:
    """Per prompt, the decision, or the failed `ItemResult` when the backend could not answer."""
    flag = ctx.settings.flags.get(capability, DEFAULT_FLAG)
    answers = await in_batches(lambda part: ctx.processor.process_choice(part, sorting.words), prompts,
                               ctx.settings.batch_size)
    return [(decided(flag, sorting, answer.value) if answer.ok else answer) for answer in answers]


def decided(flag: FlagCalibration, sorting: Sorting, answer: Mapping[str, Any]) -> Decision:
    """A decision from the chosen word's probabilities, or from the word alone where the server
    gave none (no threshold can be applied then: a word of the capability's kind passes)."""
    if answer["probabilities"] is None:
        return Decision(answer["choice"] in sorting.found, None)
    return Decision(*flag.decide(sorting.probability(answer["probabilities"])))


@dataclass(frozen=True)
class Ruling:
    """One item's decision and, past the threshold, its checked details. A failed decision has
    no `decision` and its failure as `answer`; one below the threshold has no `answer`."""

    decision: Decision | None
    answer: ItemResult | None


async def labelled(ctx: RunContext, capability: str, indices: Sequence[int]) -> dict[int, Decision]:
    """Per position k of `indices`, the decision the text's owner's flag labels made (`gold.flag_models`);
    absent where they decide nothing and the LLM decides."""
    known: dict[int, Decision] = {}
    groups: dict[int, list[int]] = {}  # texts answered from the same labels go together
    for k, i in enumerate(indices):
        if ctx.flag_knowledge and ctx.flag_knowledge[i] is not None:
            groups.setdefault(id(ctx.flag_knowledge[i]), []).append(k)
    for ks in groups.values():
        flags = ctx.flag_knowledge[indices[ks[0]]]
        verdicts = await flags.verdicts(capability, [ctx.texts[indices[k]] for k in ks], ctx.settings.route)
        known.update({k: Decision(v.passed, v.probability, v.source) for k, v in zip(ks, verdicts) if v is not None})
    return known


async def decide_then_detail(ctx: RunContext, capability: str, sorting: Sorting, details: "Details",
                             output: type[BaseModel], questions: Sequence[Prompt],
                             detail_prompt: Callable[[int], Prompt],
                             known: Mapping[int, Decision] | None = None) -> list[Ruling]:
    """Per question, its ruling: decided in one token (unless `known` holds its decision already),
    then the details asked only of the items that passed (`detail_prompt(k)` for the k-th
    question), checked against `output`."""
    known = known or {}
    asked = [k for k in range(len(questions)) if k not in known]
    answers = dict(zip(asked, await decide(ctx, capability, sorting, [questions[k] for k in asked])))
    decisions = [known[k] if k in known else answers[k] for k in range(len(questions))]
    passed = [k for k, d in enumerate(decisions) if isinstance(d, Decision) and d.passed]
    answers = dict(zip(passed, await ask(ctx, [detail_prompt(k) for k in passed], details.schema,
                                         details.max_tokens)))
    rulings = []
    for k, decision in enumerate(decisions):
        if not isinstance(decision, Decision):
            rulings.append(Ruling(None, decision))
        elif k not in answers:
            rulings.append(Ruling(decision, None))
        else:
            answer = answers[k]
            if answer.ok:
                answer = validated(output, ItemResult(value={details.flag: True, **answer.value},
                                                      truncated=answer.truncated))
            rulings.append(Ruling(decision, answer))
    return rulings


@dataclass(frozen=True)
class Details:
    """How a capability asks for the details of a comment that passed: its output model's
    schema without the flag, the list required to hold at least one item."""

    flag: str  # has_alerts
    items: str  # alerts
    schema: JSONSchema
    max_tokens: int

    @classmethod
    def of(cls, output: type[BaseModel]) -> "Details":
        full = schema_for(output)
        flag = next(name for name, f in output.model_fields.items() if f.annotation is bool)
        items = next(name for name in full["properties"] if name != flag)
        schema = {**full, "properties": {items: {**full["properties"][items], "minItems": 1}}, "required": [items]}
        return cls(flag, items, schema, answer_token_bound(schema))

    def wire(self, decision: Decision, answer: dict[str, Any] | None) -> dict[str, Any]:
        """The prototype's shape plus the decision's probability, on the value and on each item."""
        probability = None if decision.probability is None else round(decision.probability, 4)
        listed = [{**item, "probability": probability} for item in (answer or {}).get(self.items, [])]
        return {self.flag: bool(listed), "probability": probability, self.items: listed, "source": decision.source}
