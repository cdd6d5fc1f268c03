"""The learned classifier: per taxonomy node, a logistic regression on sentence embeddings,
trained from the taxonomy's gold, with calibrated probabilities.

A node's positives are the gold comments with a stem through it; a node with too few
positives or negatives gets no model (its probability is unknown, so the cascade never
decides a comment alone on it). Thresholds are fitted per level on held-back gold: the
gold is split in folds, each fold predicted by models trained on the others
(`out_of_fold`), and the thresholds are chosen on those predictions, never on the comments
a model was trained on.
"""
from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from ..taxonomy import NodePath, Taxonomy

MIN_EXAMPLES = 3  # fewest positives and negatives a node needs for a model of its own
CALIBRATION_FOLDS = 3  # each node's probability is the mean of this many calibrated regressions
FOLDS = 5
SURE_PRECISION = 0.9  # how often the learned classifier's lone decisions were right on held-back gold
GRID = np.round(np.arange(0.02, 1.0, 0.02), 2)


@dataclass(frozen=True)
class LevelThresholds:
    """One level's decisions: `accept` is the best-F1 threshold (the learned route alone);
    a comment is sure of a node at or past `sure_yes`, or at or below `sure_no`."""

    accept: float = 0.5
    sure_no: float = 0.0
    sure_yes: float = 1.01


@dataclass(frozen=True)
class NodeModels:
    """Every modelled node's calibrated regressions as plain arrays (no pickled estimator):
    node m's probability for a vector x is the mean over its `CALIBRATION_FOLDS` regressions k
    of expit(-(slope[m,k] * (weights[m,k] . x + bias[m,k]) + offset[m,k])), what scikit-learn's
    sigmoid-calibrated `predict_proba` computes, here for all nodes in one product."""

    paths: tuple[NodePath, ...]
    weights: np.ndarray  # (nodes, folds, dimensions)
    bias: np.ndarray  # (nodes, folds)
    slope: np.ndarray  # (nodes, folds)
    offset: np.ndarray  # (nodes, folds)

    @classmethod
    def empty(cls, dimensions: int) -> "NodeModels":
        zero = np.zeros((0, CALIBRATION_FOLDS), dtype=np.float32)
        return cls((), np.zeros((0, CALIBRATION_FOLDS, dimensions), dtype=np.float32), zero, zero, zero)

    @classmethod
    def from_fitted(cls, fitted: dict[NodePath, CalibratedClassifierCV], dimensions: int) -> "NodeModels":
        if not fitted:
            return cls.empty(dimensions)
        parts = [[(c.estimator.coef_[0], c.estimator.intercept_[0], c.calibrators[0].a_, c.calibrators[0].b_)
                  for c in model.calibrated_classifiers_] for model in fitted.values()]
        weights, bias, slope, offset = (np.array([[fold[n] for fold in node] for node in parts], dtype=np.float32)
                                        for n in range(4))
        return cls(tuple(fitted), weights, bias, slope, offset)

    def __len__(self) -> int:
        return len(self.paths)

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """(rows, nodes) probabilities."""
        if not len(self.paths):
            return np.zeros((len(vectors), 0), dtype=np.float32)
        scores = np.einsum("nd,mkd->nmk", vectors.astype(np.float32), self.weights) + self.bias
        return expit(-(self.slope * scores + self.offset)).mean(axis=2)


@dataclass
class LearnedModel:
    taxonomy_version: str  # `labels.taxonomy_version` of the tree it was trained for
    models: NodeModels
    levels: dict[int, LevelThresholds] = field(default_factory=dict)
    gold_count: int = 0
    trained_at: float = field(default_factory=time.time)

    def probabilities(self, vectors: np.ndarray) -> list[dict[NodePath, float]]:
        """Per row, each modelled node's probability (nodes without a model are absent)."""
        table = self.models.predict(vectors).tolist()
        return [dict(zip(self.models.paths, row)) for row in table]

    def thresholds(self, path: NodePath) -> LevelThresholds:
        return self.levels.get(len(path), LevelThresholds())


def positives(stems: Sequence[frozenset[NodePath]], path: NodePath) -> np.ndarray:
    """1 where a comment's gold has a stem through `path`."""
    return np.array([any(stem[: len(path)] == path for stem in s) for s in stems], dtype=int)


def fit_nodes(vectors: np.ndarray, stems: Sequence[frozenset[NodePath]], taxonomy: Taxonomy) -> NodeModels:
    """A calibrated logistic regression per node with at least `MIN_EXAMPLES` positives and negatives."""
    models = {}
    for path, _ in taxonomy.nodes():
        y = positives(stems, path)
        found = int(y.sum())
        if min(found, len(y) - found) < MIN_EXAMPLES:
            continue
        model = CalibratedClassifierCV(LogisticRegression(C=4.0, max_iter=1000), cv=CALIBRATION_FOLDS,
                                       method="sigmoid")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models[path] = model.fit(vectors, y)
    return NodeModels.from_fitted(models, vectors.shape[1])


def out_of_fold(vectors: np.ndarray, stems: Sequence[frozenset[NodePath]], taxonomy: Taxonomy,
                seed: int = 0) -> list[dict[NodePath, float]]:
    """Each comment's node probabilities from models that never saw it (`FOLDS` folds)."""
    predicted: list[dict[NodePath, float]] = [{} for _ in stems]
    folds = KFold(n_splits=min(FOLDS, len(stems)), shuffle=True, random_state=seed)
    for train, held in folds.split(vectors):
        part = LearnedModel("", fit_nodes(vectors[train], [stems[k] for k in train], taxonomy))
        for k, row in zip(held, part.probabilities(vectors[held])):
            predicted[k] = row
    return predicted


def fit_levels(predicted: Sequence[dict[NodePath, float]], stems: Sequence[frozenset[NodePath]],
               precision: float) -> dict[int, LevelThresholds]:
    """Per level, from held-back predictions: the best-F1 threshold (on every comment, as the
    learned route meets them); the lowest threshold whose acceptances are surely right at least
    `precision` of the time; and the highest below which surely no more than 1 - `precision` of
    the right nodes fall (rejections are judged by the right answers they would lose, not by
    how often they are right: most nodes are wrong for most comments, so that share says
    nothing). None where no threshold reaches it: with little gold, none does. The sure
    thresholds are judged only on comments whose gold passes through the node's parent, where
    the cascade trusts them."""
    every: dict[int, list[tuple[float, int, bool]]] = defaultdict(list)
    for row, gold in zip(predicted, stems):
        for path, p in row.items():
            under_parent = len(path) == 1 or any(stem[: len(path) - 1] == path[:-1] for stem in gold)
            every[len(path)].append((p, int(any(stem[: len(path)] == path for stem in gold)), under_parent))
    levels = {}
    for level, triples in every.items():
        p, y, under = (np.array(column) for column in zip(*triples))
        f1 = [2 * (y & (p >= t)).sum() / max(1, (p >= t).sum() + y.sum()) for t in GRID]
        p, y = p[under], y[under]
        yes = [t for t in GRID if surely(int(y[p >= t].sum()), int((p >= t).sum())) >= precision]
        no = [t for t in GRID if surely(int(y[p > t].sum()), int(y.sum())) >= precision]
        levels[level] = LevelThresholds(accept=float(GRID[int(np.argmax(f1))]),
                                        sure_no=float(max(no)) if no else 0.0,
                                        sure_yes=float(min(yes)) if yes else 1.01)
    return levels


def surely(right: int, decided: int, z: float = 1.645) -> float:
    """The share of right decisions one can be 95% sure of (Wilson's lower bound): a threshold
    that was right 5 times out of 5 is not trusted as one right 190 times out of 200."""
    if not decided:
        return 0.0
    share = right / decided
    spread = z * math.sqrt(share * (1 - share) / decided + z * z / (4 * decided * decided))
    return (share + z * z / (2 * decided) - spread) / (1 + z * z / decided)


def train(vectors: np.ndarray, stems: Sequence[frozenset[NodePath]], taxonomy: Taxonomy, taxonomy_version: str,
          precision: float = SURE_PRECISION) -> LearnedModel:
    """Models on all the gold, thresholds fitted on out-of-fold predictions of it."""
    levels = fit_levels(out_of_fold(vectors, stems, taxonomy), stems, precision) if len(stems) >= 2 * FOLDS else {}
    return LearnedModel(taxonomy_version, fit_nodes(vectors, stems, taxonomy), levels, gold_count=len(stems))
