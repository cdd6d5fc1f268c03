"""A flag the sample shows too rarely to learn it (an alert among review sentences) still costs
an LLM call per comment, unless the learned side can say "surely not". It learns that from the
LLM's own probability on every sampled comment: a ridge regression from the embedding to that
probability, and a margin, the 99th percentile of how far its out-of-fold predictions fell
below the LLM's. A comment whose predicted probability stays below the flag's threshold by
more than that margin is decided "no" without asking; every other comment is the LLM's, so a
comment like the few the LLM found suspicious is always asked."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from ..gold.flag_models import Verdict
from ..gold.learned import FOLDS

MARGIN_QUANTILE = 0.99
MIN_TAUGHT = 50  # sampled comments with a probability needed to learn one


@dataclass(frozen=True)
class SurelyNot:
    """One flag's regression onto the LLM's probability, and how far below the threshold is sure."""

    weights: np.ndarray
    bias: float
    margin: float
    threshold: float
    source: str = "learned"
    model: None = None  # it answers only "no": nothing for the doubt of `distill.doubt` to weigh

    def predicted(self, vectors: np.ndarray) -> np.ndarray:
        return vectors.astype(np.float32) @ self.weights + self.bias

    def verdicts(self, capability: str, texts: Sequence[str], vectors: np.ndarray, route: str) -> list[Verdict | None]:
        """Per text, "no" where surely not, else None (the LLM decides); nothing on the llm route."""
        if route == "llm":
            return [None] * len(texts)
        return [Verdict(False, max(0.0, float(p)), self.source) if p + self.margin < self.threshold else None
                for p in self.predicted(vectors)]


def surely_not(vectors: np.ndarray, probabilities: Sequence[float | None], threshold: float,
               source: str) -> SurelyNot | None:
    """The regression from the sampled comments whose LLM probability is known (None: too few)."""
    known = [k for k, p in enumerate(probabilities) if p is not None]
    if len(known) < MIN_TAUGHT:
        return None
    x, y = vectors[known], np.array([probabilities[k] for k in known], dtype=float)
    below = np.zeros(len(y))  # how far each out-of-fold prediction fell short of the LLM's probability
    for train, held in KFold(n_splits=FOLDS, shuffle=True, random_state=0).split(x):
        below[held] = y[held] - Ridge(alpha=1.0).fit(x[train], y[train]).predict(x[held])
    fitted = Ridge(alpha=1.0).fit(x, y)
    margin = max(0.0, float(np.quantile(below, MARGIN_QUANTILE)))
    return SurelyNot(fitted.coef_.astype(np.float32), float(fitted.intercept_), margin, threshold, source)
