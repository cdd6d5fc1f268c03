"""Evaluating the capabilities that decide before detailing: alerts, recommendations, trend.

Each text of the labelled data says, per capability, whether it holds one (`Example.flags`):
a suggestion or not, a harassment report (an alert), an ordinary review sentence (neither an
alert nor a trend). The report gives precision, recall and F1 where the data has both kinds,
the share of the texts without one that were flagged anyway (what a reader of alerts pays
for), and for alerts the share of the reports typed as the data says. Fitting chooses each
capability's threshold for those targets on the tune half.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..calibration import FlagCalibration, fit_flag
from .gold import Example

# Capability -> (result key, flag key).
FLAGGED = {"recommendations": ("recommendations", "has_recommendations"), "alerts": ("alerts", "has_alerts"),
           "trend": ("trends", "has_trends")}
# The most of the texts without one that a capability may flag (its threshold is fitted for it).
MAX_FALSE_SHARE = {"alerts": 0.01, "trend": 0.02}
# The type every positive of a data set must get: SafeCity's reports are sexual harassment.
EXPECTED_TYPE = {"alerts": ("alert_type", "sexual_harassment")}


@dataclass(frozen=True)
class FlagAnswer:
    """What the service answered for one text and one capability."""

    flagged: bool
    probability: float | None
    types: tuple[str, ...] = ()  # the expected type's field of each item (alert_type)
    source: str = "llm"  # who decided: llm, or the flag labels (learned, gold)


def read_flags(result: Mapping[str, Any]) -> dict[str, FlagAnswer]:
    """Per decided capability present in a wire result, its answer."""
    answers = {}
    for name, (key, flag) in FLAGGED.items():
        value = result.get(key)
        if not isinstance(value, dict) or flag not in value:
            continue
        field = EXPECTED_TYPE.get(name, ("", ""))[0]
        types = tuple(str(item.get(field)) for item in value.get(key, ()) if field in item)
        answers[name] = FlagAnswer(bool(value[flag]), value.get("probability"), types, str(value.get("source", "llm")))
    return answers


def flag_scores(examples: Sequence[Example], answers: Sequence[Mapping[str, FlagAnswer]], name: str) -> dict[str, Any]:
    """One capability's scores over the texts whose data says whether they hold one."""
    pairs = [(e.flags[name], a[name]) for e, a in zip(examples, answers, strict=True) if name in e.flags]
    answered = [(truth, a) for truth, a in pairs if a is not None]
    tp = sum(truth and a.flagged for truth, a in answered)
    fp = sum(not truth and a.flagged for truth, a in answered)
    positives = sum(truth for truth, _ in answered)
    negatives = len(answered) - positives
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    scores = {
        "texts": len(pairs), "unanswered": len(pairs) - len(answered), "positives": positives,
        "negatives": negatives, "flagged": tp + fp, "true_positives": tp,
        "precision": precision, "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "false_share": fp / negatives if negatives else None,
        # Who decided, as shares of the answered texts (the LLM, or the labels: learned, gold).
        "decided": {source: sum(a.source == source for _, a in answered) / len(answered)
                    for source in sorted({a.source for _, a in answered})} if answered else {},
    }
    if name in EXPECTED_TYPE and positives:
        wanted = EXPECTED_TYPE[name][1]
        scores["typed_right"] = sum(truth and a.flagged and wanted in a.types for truth, a in answered) / positives
    return scores


def flag_section(examples: Sequence[Example], answers: Sequence[Mapping[str, FlagAnswer]],
                 names: Sequence[str]) -> dict[str, Any]:
    """Scores per decided capability that the data has labels for."""
    return {name: flag_scores(examples, answers, name) for name in names
            if name in FLAGGED and any(name in e.flags for e in examples)}


def flag_lines(section: Mapping[str, Any]) -> list[str]:
    lines = []
    for name, s in section.items():
        parts = [f"{name}: {s['flagged']} of {s['texts']} texts flagged"]
        if s["positives"] and s["negatives"]:
            parts.append(f"P {s['precision']:.3f} R {s['recall']:.3f} F1 {s['f1']:.3f}")
        elif s["positives"]:
            parts.append(f"recall {s['recall']:.3f} on {s['positives']} that hold one")
        if s["false_share"] is not None:
            parts.append(f"{s['false_share']:.1%} of the {s['negatives']} without one flagged")
        if "typed_right" in s:
            parts.append(f"typed {EXPECTED_TYPE[name][1]}: {s['typed_right']:.3f}")
        if s["unanswered"]:
            parts.append(f"{s['unanswered']} unanswered")
        if set(s.get("decided", {})) - {"llm"}:
            parts.append("decided by " + ", ".join(f"{who} {share:.0%}" for who, share in s["decided"].items()))
        lines.append(", ".join(parts))
    return lines


def fit_flags(examples: Sequence[Example], answers: Sequence[Mapping[str, FlagAnswer]], names: Sequence[str],
              source: str) -> dict[str, FlagCalibration]:
    """Per capability with labels of both kinds, a map of its raw probability and the
    threshold that reaches the best F1 while flagging at most `MAX_FALSE_SHARE` of the texts
    without one; with texts without one only, the lowest raw threshold that flags at most
    that share of them."""
    fitted = {}
    for name in names:
        observed = [(a[name].probability, e.flags[name]) for e, a in zip(examples, answers, strict=True)
                    if name in e.flags and name in a and a[name].probability is not None]
        if not observed or all(truth for _, truth in observed):
            continue
        if not any(truth for _, truth in observed):  # texts without one only: hold the share they may flag
            if name in MAX_FALSE_SHARE:
                raw = np.array([p for p, _ in observed])
                fitted[name] = FlagCalibration(best_flag_threshold(raw, np.zeros(len(raw), bool),
                                                                   MAX_FALSE_SHARE[name]), None, source)
            continue
        flag = fit_flag(observed, 1.0, source)
        mapped = np.array([flag.map(p) for p, _ in observed])
        truth = np.array([t for _, t in observed])
        fitted[name] = FlagCalibration(best_flag_threshold(mapped, truth, MAX_FALSE_SHARE.get(name, 1.0)),
                                       flag.map, source)
    return fitted


def redecided(answers: Sequence[Mapping[str, FlagAnswer]],
              flags: Mapping[str, FlagCalibration]) -> list[dict[str, FlagAnswer]]:
    """The answers as `flags` would decide them from their raw probabilities (to score a fit)."""
    return [{name: replace(a, flagged=flags[name].decide(a.probability)[0]) if name in flags and a.probability is not None
             else a for name, a in answer.items()} for answer in answers]


def best_flag_threshold(probabilities: np.ndarray, truth: np.ndarray, max_false_share: float) -> float:
    """The threshold (one of the probabilities seen, or just above the highest) with the best
    F1 among those that flag at most `max_false_share` of the negatives; with no positives,
    the lowest such threshold."""
    candidates = sorted({*probabilities.tolist(), float(np.nextafter(probabilities.max(initial=0.0), 2.0))})
    best, best_f1 = candidates[-1], -1.0
    for threshold in candidates:
        flagged = probabilities >= threshold
        tp, fp = int((flagged & truth).sum()), int((flagged & ~truth).sum())
        if fp > max_false_share * int((~truth).sum()):
            continue
        f1 = 2 * tp / (2 * tp + fp + int((~flagged & truth).sum())) if truth.any() else 1.0
        if f1 > best_f1:
            best, best_f1 = threshold, f1
    return best
