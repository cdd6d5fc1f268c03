"""Which comments the learned models are least sure of: those the LLM answers on the distilled
route (through the cascade, which asks it only about the nodes the models are unsure of).

A model's doubt about a comment at one node is how near its probability lies to the node's
accept threshold: 1 on it, 0 at certainty either way. A comment's doubt is its greatest over
every modelled topic node and flag, since one wrong node makes a wrong answer."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..gold.flag_models import FlagKnowledge
from ..gold.knowledge import Knowledge
from ..gold.learned import LearnedModel


def doubt(model: LearnedModel, vectors: np.ndarray) -> np.ndarray:
    """(rows,): each comment's greatest doubt over the model's nodes (0 where it models none)."""
    table = model.models.predict(vectors)
    if not table.shape[1]:
        return np.zeros(len(vectors))
    accept = np.array([model.thresholds(path).accept for path in model.models.paths])
    near = np.where(table < accept, table / accept, (1 - table) / np.maximum(1 - accept, 1e-9))
    return near.max(axis=1)


def least_sure(vectors: np.ndarray, knowledge: Knowledge | None, flags: FlagKnowledge | None,
               share: float) -> list[int]:
    """The `share` of rows (indices into `vectors`) the learned models doubt most, most doubted first."""
    count = math.ceil(share * len(vectors))
    models: Sequence[LearnedModel] = [m for m in (
        [knowledge.model if knowledge else None] + [f.model for f in (flags.models.values() if flags else ())])
        if m is not None]
    if not count or not models:
        return []
    doubts = np.max([doubt(model, vectors) for model in models], axis=0)
    return [int(k) for k in np.argsort(-doubts, kind="stable")[:count]]
