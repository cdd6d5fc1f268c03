"""What every capability is, and the two shapes most of them share.

A capability runs once over all the texts of a batch that asked for it and returns, per
text, an `Outcome`: the wire value under its result key, plus any per-item errors.
Whole-text capabilities (`text.py`) ask about each comment; stem capabilities (`stems.py`)
about each (comment, complete stem) that classification found.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from pydantic import BaseModel, ValidationError

from ..hierarchy import TextClassification
from ..llm.base import ItemResult, Processor, Prompt, process_in_batches
from ..llm.fairness import Requester
from ..llm.schema import answer_token_bound, schema_for
from ..prompts import stem_prompt
from ..settings import ClassifierSettings
from ..taxonomy import NodePath, Taxonomy, format_path

if TYPE_CHECKING:
    from ..gold.flag_models import FlagKnowledge
    from ..gold.knowledge import Knowledge


@dataclass
class Outcome:
    """One text's result from one capability."""

    value: Any = None
    errors: list[str] = field(default_factory=list)
    truncated: bool = False

    def note(self, capability: str, answer: ItemResult, what: str = "") -> bool:
        """Record an answer's error or truncation; True when the answer can be used."""
        self.truncated |= answer.truncated
        if not answer.ok:
            self.errors.append(f"{capability}{f' ({what})' if what else ''}: {answer.error}")
        return answer.ok


@dataclass
class RunContext:
    """Everything a capability may read while it runs over one batch of texts."""

    texts: Sequence[str]
    prefixes: Sequence[str]  # per text: the root's name or the request's project_name
    taxonomy: Taxonomy
    processor: Processor
    settings: ClassifierSettings
    classifications: dict[int, TextClassification] = field(default_factory=dict)
    knowledge: Sequence[Knowledge | None] = ()  # per text: the labels that answer it (its owner's), if any
    flag_knowledge: Sequence[FlagKnowledge | None] = ()  # per text: its owner's flag labels, if any
    requesters: Sequence[Requester] = ()  # per text: who asked (`llm.fairness`); none: the caller's own


class Capability(ABC):
    name: str
    result_key: str
    requires: tuple[str, ...] = ()

    @abstractmethod
    async def run(self, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
        """An `Outcome` for each text in `indices`."""

    @abstractmethod
    def empty(self) -> Any:
        """The wire value for a text with nothing in it (found nothing, asked nothing)."""

    def fixed_prompts(self, taxonomy: Taxonomy, settings: ClassifierSettings, comment: str) -> list[Prompt]:
        """Its questions whose instructions every comment shares, asked about `comment`: what
        the engine's prefix cache can hold before the first comment comes (`classifier.warmup`).
        None by default."""
        return []


def validated(output: type[BaseModel], answer: ItemResult) -> ItemResult:
    """The answer as its wire value, checked item by item: one answer the model type
    refuses fails that item alone, never the batch it came with."""
    if not answer.ok:
        return answer
    try:
        value = output.model_validate(answer.value).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "answer"
        return ItemResult(error=f"answer does not fit {output.__name__} ({where}: {first['msg']})",
                          truncated=answer.truncated)
    return ItemResult(value=value, truncated=answer.truncated)


class StemCapability(Capability):
    """A capability asked once per complete stem a text was classified into."""

    requires = ("classification",)

    def __init__(self, name: str, result_key: str, task: str, output: type[BaseModel]) -> None:
        self.name, self.result_key, self.task, self.output = name, result_key, task, output
        self.schema = schema_for(output)
        self.max_tokens = answer_token_bound(self.schema)

    def empty(self) -> Any:
        return {}

    async def run(self, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
        pairs = [(i, stem) for i in indices for stem in complete_stems(ctx, i)]
        prompts = [
            stem_prompt(self.task, ctx.taxonomy, stem, ctx.texts[i], max_definitions=ctx.settings.max_stem_definitions)
            for i, stem in pairs
        ]
        answers = await ask(ctx, prompts, self.schema, self.max_tokens)
        outcomes = {i: Outcome(value={}) for i in indices}
        for (i, stem), answer in zip(pairs, answers):
            stem_name = format_path(None, stem)
            checked = validated(self.output, answer)
            if outcomes[i].note(self.name, checked, stem_name):
                outcomes[i].value[stem_name] = self.wire_value(checked.value, answer)
        return outcomes

    def wire_value(self, value: dict[str, Any], answer: ItemResult) -> Any:
        """One stem's wire value from its checked answer (`answer` holds the tokens)."""
        return value


def complete_stems(ctx: RunContext, index: int) -> list[NodePath]:
    """The complete stems (paths that end at a leaf) the text at `index` was classified into."""
    return [path for path in ctx.classifications[index].accepted if ctx.taxonomy.is_complete_stem(path)]


async def ask(ctx: RunContext, prompts: list[Prompt], schema: dict, max_tokens: int) -> list[ItemResult]:
    """The prompts' answers under `schema`, sent in the run's batch size."""
    return await process_in_batches(
        ctx.processor, prompts, schema, max_tokens=max_tokens, batch_size=ctx.settings.batch_size
    )
