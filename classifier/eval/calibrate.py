"""Calibration on labelled data: fit it on one part of a sample, check it on another.

Both need every node's raw probability, not only the accepted ones, so such a run is
*exhaustive*: every node is accepted (threshold 0, no cap but the one `select` and `flat`
write in their prompts) and none is calibrated. Because
a decision about a node depends only on its own probability and its parent's acceptance,
the decisions a threshold would make are then found from the same run (`decide`) to pick
the threshold that does best.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, Sequence

import numpy as np

from ..calibration import Calibration, decide, expected_calibration_error, reliability
from ..hierarchy import MAX_OPTIONS
from ..settings import ClassifierSettings
from ..taxonomy import NodePath, format_path
from .gold import Example
from .harness import Prediction
from .metrics import level_scores, with_ancestors

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))
PROBABILITY_STRATEGIES = ("select", "score", "flat")


def exhaustive(settings: ClassifierSettings) -> ClassifierSettings:
    """Settings under which the walk reports every node it scored, with its raw probability.
    `select` and `flat` keep their `max_paths`: the prompt asks for at most that many topics."""
    max_paths = MAX_OPTIONS if settings.strategy == "score" else settings.max_paths
    return replace(settings, min_probability=0.0, max_paths=max_paths, calibration=None)


def observations(examples: Sequence[Example], predictions: Sequence[Prediction]) -> list[tuple[NodePath, float, bool]]:
    """(node, raw probability, is the node in the gold) for every node scored in a text
    without an error."""
    pairs = []
    for example, prediction in zip(examples, predictions, strict=True):
        if prediction.error is None:
            gold = with_ancestors(example.stems)
            pairs.extend((path, p, path in gold) for path, p in prediction.probabilities.items())
    return pairs


def calibrate(prediction: Prediction, calibration: Calibration) -> dict[NodePath, float]:
    """A text's scored nodes with their calibrated probabilities, as the walk decides on them."""
    return {path: calibration.apply(path, p) for path, p in prediction.probabilities.items()}


def threshold_table(
    examples: Sequence[Example], predictions: Sequence[Prediction], calibration: Calibration, max_paths: int,
    depth: int, thresholds: Sequence[float] = THRESHOLDS,
) -> list[dict[str, Any]]:
    """Micro F1 per level at each threshold, deciding on calibrated probabilities as the walk would."""
    gold = [e.stems for e in examples]
    rows = []
    for t in thresholds:
        decided = [frozenset(decide(calibrate(p, calibration), t, max_paths)) for p in predictions]
        f1 = [level_scores(decided, gold, k).micro.f1 for k in range(1, depth + 1)]
        rows.append({"min_probability": t, "micro_f1": f1, "mean_f1": sum(f1) / len(f1)})
    return rows


def best_threshold(table: Sequence[dict[str, Any]]) -> float:
    """The threshold with the best mean micro F1 over the levels (the lowest on a tie)."""
    return max(table, key=lambda row: (row["mean_f1"], -row["min_probability"]))["min_probability"]


def calibration_section(pairs: Sequence[tuple[NodePath, float, bool]], calibration: Calibration) -> dict[str, Any]:
    """Per level: how many observations, the expected calibration error of the raw and of
    the calibrated probabilities, and both reliability tables."""
    levels = {}
    for level in sorted({len(path) for path, _, _ in pairs}):
        here = [(path, p, r) for path, p, r in pairs if len(path) == level]
        raw, right = [p for _, p, _ in here], [r for _, _, r in here]
        fitted = [calibration.apply(path, p) for path, p, _ in here]
        levels[str(level)] = {
            "observations": len(raw),
            "positives": int(sum(right)),
            "ece_raw": expected_calibration_error(raw, right),
            "ece_calibrated": expected_calibration_error(fitted, right),
            "reliability_raw": [asdict(b) for b in reliability(raw, right)],
            "reliability_calibrated": [asdict(b) for b in reliability(fitted, right)],
        }
    return {"levels": levels, "min_probability": calibration.min_probability, "source": calibration.source,
            "nodes": sorted(format_path(None, path) for path in calibration.nodes)}
