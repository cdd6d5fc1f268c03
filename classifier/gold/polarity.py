"""A learned polarity: how a comment about one topic feels about it, from the comment's embedding.

Labels that give a stem's polarity (`Label.polarity`, or the LLM's answers on a distilled
route's sample) teach a multinomial logistic regression over the polarities. It is trusted
where it is sure: past the probability at which its out-of-fold answers were right at least
`SURE_PRECISION` of the time (Wilson's lower bound, as the topics' thresholds are judged); a
comment it is sure of feels so about each of its topics (one that praises one topic and
blames another is "Mixed" to it, never sure). On the learned route it also answers, sure or
not, every comment about a single topic, whose polarity is the comment's own.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from .learned import FOLDS, GRID, MIN_EXAMPLES, SURE_PRECISION, surely


@dataclass(frozen=True)
class PolarityModel:
    """The regression as plain arrays, and the probability past which it decides alone."""

    classes: tuple[str, ...]
    weights: np.ndarray  # (classes, dimensions)
    bias: np.ndarray  # (classes,)
    sure: float

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(rows, classes)."""
        return softmax(vectors.astype(np.float32) @ self.weights.T + self.bias, axis=1)

    def decide(self, vectors: np.ndarray) -> list[tuple[str, float, bool]]:
        """Per row, the likeliest polarity, its probability, and whether the model is sure of it."""
        table = self.probabilities(vectors)
        best = table.argmax(axis=1)
        return [(self.classes[b], float(row[b]), bool(row[b] >= self.sure)) for row, b in zip(table, best)]


def _fitted(vectors: np.ndarray, labels: np.ndarray) -> LogisticRegression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=4.0, max_iter=1000).fit(vectors, labels)


def train_polarity(vectors: np.ndarray, polarities: Sequence[str | None],
                   precision: float = SURE_PRECISION) -> PolarityModel | None:
    """A model from the comments whose polarity is known (None elsewhere); None where fewer than
    two polarities have `MIN_EXAMPLES` comments each or no threshold is sure enough."""
    counts = {p: polarities.count(p) for p in set(polarities) if p is not None}
    kept = [k for k, p in enumerate(polarities) if p is not None and counts[p] >= max(MIN_EXAMPLES, FOLDS)]
    if len({polarities[k] for k in kept}) < 2:
        return None
    x, y = vectors[kept], np.array([polarities[k] for k in kept])
    held = np.zeros(len(y), dtype=float)  # each comment's out-of-fold probability of its predicted class
    right = np.zeros(len(y), dtype=bool)
    for train, test in StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0).split(x, y):
        model = _fitted(x[train], y[train])
        table = model.predict_proba(x[test])
        held[test], right[test] = table.max(axis=1), model.classes_[table.argmax(axis=1)] == y[test]
    sure = [t for t in GRID if surely(int(right[held >= t].sum()), int((held >= t).sum())) >= precision]
    if not sure:
        return None
    model = _fitted(x, y)
    weights, bias = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # one row of scores for the second class: softmax([0, s]) is its sigmoid
        weights, bias = np.vstack([np.zeros_like(weights), weights]), np.concatenate([[0.0], bias])
    return PolarityModel(tuple(model.classes_), weights.astype(np.float32), bias.astype(np.float32), float(min(sure)))


def single_polarities(stems: Sequence[frozenset], polarity: Sequence[dict]) -> list[str | None]:
    """Per labelled comment, its polarity where it is about exactly one complete stem whose
    polarity is given (a comment's own feeling then), else None."""
    return [next(iter(given.values())) if len(s) == 1 and len(given) == 1 else None
            for s, given in zip(stems, polarity)]
