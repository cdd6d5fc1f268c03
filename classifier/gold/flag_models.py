"""What flag labels give the decided capabilities: per capability, a classifier learned from the
labelled comments' embeddings, and the labelled comments themselves.

For each comment, `FlagKnowledge.verdicts` says what the labels decide before any LLM call: a
comment labelled already (the same text, or a near duplicate) gets its label (`gold`); where
the learned classifier is sure (at the thresholds fitted on held-back labels, as the topics'
cascade judges them), it decides (`learned`); elsewhere nothing is decided and the LLM's
one-token decision runs as without labels. With `route` learned the classifier decides every
comment at its best-F1 threshold; with `llm`, labels decide nothing.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..taxonomy import taxonomy_from_dict
from . import model_file
from .embedder import Embedder
from .flag_labels import FlagLabel
from .knowledge import labelled_as, normalized
from .learned import MIN_EXAMPLES, SURE_PRECISION, LearnedModel, train

VERSION = "flags/1"  # the "taxonomy version" of a flag model: one node, the capability


@dataclass(frozen=True)
class Verdict:
    """A decision the labels made: whether the comment holds one, its probability, and who decided."""

    passed: bool
    probability: float
    source: str  # gold | learned


@dataclass(frozen=True)
class FlagModel:
    """One capability's labelled comments, embedded, and the classifier learned from them (None: too few)."""

    texts: Sequence[str]
    values: Sequence[bool]
    vectors: np.ndarray
    model: LearnedModel | None
    source: str = "gold"  # what its labels are, as answers name them: gold, or silver (`classifier.distill`)

    @cached_property
    def _own(self) -> dict[str, int]:
        return {normalized(text): k for k, text in enumerate(self.texts)}

    def verdicts(self, capability: str, texts: Sequence[str], vectors: np.ndarray, route: str) -> list[Verdict | None]:
        node = (capability,)
        rows = self.model.probabilities(vectors) if self.model is not None and route != "llm" else None
        labelled = labelled_as(texts, vectors @ self.vectors.T, self._own, self.texts)
        verdicts: list[Verdict | None] = []
        for row in range(len(texts)):
            if (k := labelled.get(row)) is not None:
                verdicts.append(Verdict(bool(self.values[k]), 1.0 if self.values[k] else 0.0, self.source))
            elif rows is None or node not in rows[row]:
                verdicts.append(None)
            else:
                p, levels = rows[row][node], self.model.thresholds(node)  # type: ignore[union-attr]
                if route == "learned":
                    verdicts.append(Verdict(p >= levels.accept, p, "learned"))
                elif p >= levels.sure_yes or p <= levels.sure_no:
                    verdicts.append(Verdict(p >= levels.sure_yes, p, "learned"))
                else:
                    verdicts.append(None)
        return verdicts


@dataclass(frozen=True)
class FlagKnowledge:
    """Every capability's `FlagModel` of one owner."""

    models: Mapping[str, FlagModel]
    embedder: Embedder

    async def verdicts(self, capability: str, texts: Sequence[str], route: str) -> list[Verdict | None]:
        """Per text, the labels' decision, or None where the LLM decides (embedding in a thread)."""
        flag = self.models.get(capability)
        if flag is None or route == "llm":
            return [None] * len(texts)
        return await asyncio.to_thread(lambda: flag.verdicts(capability, texts, self.embedder.embed(texts), route))


def train_flag(capability: str, values: Sequence[bool], vectors: np.ndarray,
               precision: float = SURE_PRECISION) -> LearnedModel | None:
    """A calibrated classifier of one capability with out-of-fold thresholds (None: fewer than
    `MIN_EXAMPLES` comments that hold one or that do not)."""
    found = sum(values)
    if min(found, len(values) - found) < MIN_EXAMPLES:
        return None
    tree = taxonomy_from_dict({"name": "flags", "children": [{"name": capability}]}, name="flags")
    stems = [frozenset({(capability,)}) if value else frozenset() for value in values]
    return train(vectors, stems, tree, VERSION, precision)


def flag_model(capability: str, labels: Sequence[FlagLabel], embedder: Embedder, *, path: Path | None = None,
               digest: str = "", precision: float = SURE_PRECISION) -> FlagModel:
    """Blocking: the capability's labels embedded (reusing a saved file's embeddings) and learned
    from; the saved model is reused when it names exactly these labels (`digest`), else trained
    and, with a `path`, saved."""
    keys, texts, values = [l.key for l in labels], [l.text for l in labels], [l.value for l in labels]
    matrix, model = model_file.reused_or_trained(path, VERSION, digest, keys, texts, embedder, {},
                                                 lambda vectors: train_flag(capability, values, vectors, precision))
    return FlagModel(texts, values, matrix, model)
