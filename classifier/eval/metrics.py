"""Quality metrics of a hierarchical multi-label classification against gold stems.

Paths are tuples of node names below the root (`("Food", "Quality")`).

Level-k metrics. For one text and a set of paths S, the level-k labels are
`prefixes(S, k) = {p[:k] for p in S if len(p) >= k}`: the depth-k nodes on the way to
each path, named by their whole path so `Food>General` and `Ambience>General` differ.
Gold S is the text's gold stems; predicted S is every path the classifier accepted (a
path that stopped above a leaf still counts at the levels it reached). A gold stem shorter
than k (a two-deep branch of a three-level tree) adds nothing at level k. Per text,
TP = |pred_k & gold_k|, FP = |pred_k - gold_k|, FN = |gold_k - pred_k|.

- micro: TP, FP, FN summed over texts, then P = TP/(TP+FP), R = TP/(TP+FN) and
  F1 = 2PR/(P+R).
- macro: the same three numbers per label, from that label's own counts, averaged
  unweighted over every label that occurs in the gold or the prediction of some text.

Hierarchical P/R/F1 (Kiritchenko et al. 2005): each text's predicted and gold paths are
extended with all their ancestors (below the root), P-hat and T-hat; then
hP = sum |P-hat & T-hat| / sum |P-hat|, hR = sum |P-hat & T-hat| / sum |T-hat| over texts,
and hF = 2 hP hR / (hP + hR). A wrong leaf under the right parent still earns the parent.

Any ratio whose denominator is 0 is 0 (as scikit-learn's `zero_division=0`); texts with
neither gold nor predicted labels at a level are true negatives and change nothing.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Collection, Iterable, Sequence

from ..taxonomy import NodePath

PathSet = Collection[NodePath]


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int) -> "PRF":
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, tp + fn)
        return cls(precision, recall, _ratio(2 * precision * recall, precision + recall))


@dataclass(frozen=True)
class LevelScores:
    level: int
    micro: PRF
    macro: PRF
    labels: int  # labels the macro average runs over
    gold: int  # gold labels at this level, all texts together
    predicted: int  # predicted labels at this level, all texts together


def prefixes(paths: Iterable[NodePath], level: int) -> set[NodePath]:
    """The depth-`level` nodes (as paths) that `paths` pass through or end at."""
    return {tuple(p[:level]) for p in paths if len(p) >= level}


def level_scores(predicted: Sequence[PathSet], gold: Sequence[PathSet], level: int) -> LevelScores:
    """Micro and macro P/R/F1 of one level over texts (`predicted[i]` against `gold[i]`)."""
    tp: Counter[NodePath] = Counter()
    fp: Counter[NodePath] = Counter()
    fn: Counter[NodePath] = Counter()
    for pred_paths, gold_paths in zip(predicted, gold, strict=True):
        pred, true = prefixes(pred_paths, level), prefixes(gold_paths, level)
        tp.update(pred & true)
        fp.update(pred - true)
        fn.update(true - pred)
    labels = set(tp) | set(fp) | set(fn)
    per_label = [PRF.from_counts(tp[label], fp[label], fn[label]) for label in labels]
    macro = PRF(*(_mean([getattr(s, f) for s in per_label]) for f in ("precision", "recall", "f1")))
    micro = PRF.from_counts(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return LevelScores(
        level=level,
        micro=micro,
        macro=macro,
        labels=len(labels),
        gold=sum(tp.values()) + sum(fn.values()),
        predicted=sum(tp.values()) + sum(fp.values()),
    )


def with_ancestors(paths: Iterable[NodePath]) -> set[NodePath]:
    """Every node on the way to each path, the path's own node included (root excluded)."""
    return {tuple(p[:k]) for p in paths for k in range(1, len(p) + 1)}


def hierarchical_scores(predicted: Sequence[PathSet], gold: Sequence[PathSet]) -> PRF:
    """Hierarchical precision, recall and F1 over texts (`predicted[i]` against `gold[i]`)."""
    tp = fp = fn = 0
    for pred_paths, gold_paths in zip(predicted, gold, strict=True):
        pred, true = with_ancestors(pred_paths), with_ancestors(gold_paths)
        tp, fp, fn = tp + len(pred & true), fp + len(pred - true), fn + len(true - pred)
    return PRF.from_counts(tp, fp, fn)


def exact_path_accuracy(predicted_stems: Sequence[PathSet], gold: Sequence[PathSet]) -> float:
    """Share of texts whose set of predicted complete stems equals the gold set
    (no stem predicted for a text with no gold stem counts as exact)."""
    return _ratio(sum(set(p) == set(g) for p, g in zip(predicted_stems, gold, strict=True)), len(gold))


def majority_stems(gold: Sequence[PathSet]) -> frozenset[NodePath]:
    """The most frequent gold stem set (the first seen on a tie): predicted for every text,
    it is the constant baseline a classifier has to beat."""
    return Counter(frozenset(g) for g in gold).most_common(1)[0][0] if gold else frozenset()


@dataclass(frozen=True)
class PolarityScore:
    accuracy: float
    pairs: int  # (text, stem) pairs both predicted and gold: the denominator


def polarity_accuracy(
    predicted: Sequence[dict[NodePath, str | None]], gold: Sequence[dict[NodePath, str]]
) -> PolarityScore:
    """Stem-polarity accuracy on correctly found stems: over every (text, stem) with the
    stem in both the prediction and the gold, the share whose polarity matches. A found
    stem with no polarity answer (an error) counts as wrong, so errors cannot flatter it.

    `predicted[i]` maps text i's predicted stems to their polarity (`None` when missing);
    its keys are the predicted stems."""
    pairs = correct = 0
    for pred, true in zip(predicted, gold, strict=True):
        for stem in pred.keys() & true.keys():
            pairs += 1
            correct += pred[stem] == true[stem]
    return PolarityScore(_ratio(correct, pairs), pairs)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _mean(values: Sequence[float]) -> float:
    return _ratio(sum(values), len(values))
