"""Calibration: turning the model's probabilities into ones a threshold can be trusted on.

A model's probability for a topic is a score, not a frequency: of the topics a 1.5B model
gives 0.8, far fewer than 80% may be right. Fitted on labelled data, a monotone map
(isotonic regression) sends each raw probability to the share of right answers observed at
it, so `--min-probability 0.5` means "at least even odds". There is one map per taxonomy
level, and one per node where the data holds enough of that node to fit it: a model is
over-sure of some topics (an "overall" topic it adds beside the specific one) and not of
others, which one map per level cannot tell apart. Maps are stored as the breakpoints of a
piecewise-linear function, applied here without the fitting library.

The capabilities that first decide whether a comment holds anything of their kind (an
alert, a recommendation, a trend) have a section of their own: per capability, a map of the
probability the model gave the capability's own words and the threshold chosen for it on
labelled data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .taxonomy import NodePath, format_path, parse_stem

CALIBRATION_FORMAT = "classifier-calibration/1"
RELIABILITY_BINS = 10
# A node gets a map of its own when the fitting data scored it this often, with at least
# NODE_MIN_EACH right and NODE_MIN_EACH wrong among them; the others use their level's.
MIN_NODE_OBSERVATIONS = 20
NODE_MIN_EACH = 3


@dataclass(frozen=True)
class ProbabilityMap:
    """A monotone piecewise-linear map of [0, 1]."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, probability: float) -> float:
        return float(np.interp(probability, self.x, self.y))


@dataclass(frozen=True)
class FlagCalibration:
    """One capability's decision: its probability map (None: the raw probability) and the
    (mapped) probability from which the comment is taken to hold something of its kind."""

    min_probability: float
    map: ProbabilityMap | None = None
    source: str = ""
    model: str = ""  # the model whose probabilities it was fitted on ("": unknown, applied to any)

    def decide(self, probability: float) -> tuple[bool, float]:
        """Whether the comment passes, and the probability it was judged on."""
        mapped = self.map(probability) if self.map else probability
        return mapped >= self.min_probability, mapped

    def to_json(self) -> dict:
        points = {"x": list(self.map.x), "y": list(self.map.y)} if self.map else None
        return {"min_probability": self.min_probability, "map": points, "source": self.source}  # model: the file's


@dataclass(frozen=True)
class Calibration:
    """Maps per level (1 = the root's children) and per node; a node uses its own map if it
    has one, else its level's, else its probability is left as is."""

    levels: Mapping[int, ProbabilityMap]
    source: str = ""  # what it was fitted on, for people reading the file
    min_probability: float | None = None  # the threshold that did best where it was fitted
    nodes: Mapping[NodePath, ProbabilityMap] = field(default_factory=dict)
    flags: Mapping[str, FlagCalibration] = field(default_factory=dict)  # capability name -> its decision
    model: str = ""  # the model whose probabilities it was fitted on ("": unknown, applied to any)

    def apply(self, path: NodePath, probability: float) -> float:
        mapping = self.nodes.get(path) or self.levels.get(len(path))
        return mapping(probability) if mapping else probability

    def to_json(self) -> dict:
        return {
            "format": CALIBRATION_FORMAT,
            "model": self.model,
            "source": self.source,
            "min_probability": self.min_probability,
            "levels": {str(level): {"x": list(m.x), "y": list(m.y)} for level, m in sorted(self.levels.items())},
            "nodes": {format_path(None, path): {"x": list(m.x), "y": list(m.y)} for path, m in self.nodes.items()},
            "flags": {name: flag.to_json() for name, flag in sorted(self.flags.items())},
        }


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message says what to fix."""


def fit_calibration(pairs: Iterable[tuple[NodePath, float, bool]], source: str = "",
                    min_node_observations: int = MIN_NODE_OBSERVATIONS) -> Calibration:
    """Isotonic maps from (node, probability, was it right) observations: one per level,
    and one per node observed at least `min_node_observations` times with at least
    `NODE_MIN_EACH` right and wrong answers (0: levels only)."""
    by_level: dict[int, list[tuple[float, bool]]] = {}
    by_node: dict[NodePath, list[tuple[float, bool]]] = {}
    for path, probability, right in pairs:
        by_level.setdefault(len(path), []).append((probability, right))
        by_node.setdefault(path, []).append((probability, right))
    levels = {level: _isotonic(observed) for level, observed in by_level.items()}
    nodes = {
        path: _isotonic(observed) for path, observed in by_node.items()
        if min_node_observations and len(observed) >= min_node_observations
        and NODE_MIN_EACH <= sum(right for _, right in observed) <= len(observed) - NODE_MIN_EACH
    }
    return Calibration(levels, source, nodes=nodes)


def fit_flag(observed: Sequence[tuple[float, bool]], min_probability: float, source: str = "") -> FlagCalibration:
    """A capability's decision fitted on (probability of its words, did the comment hold one)."""
    return FlagCalibration(min_probability, _isotonic(observed), source)


def _isotonic(observed: Sequence[tuple[float, bool]]) -> ProbabilityMap:
    from sklearn.isotonic import IsotonicRegression

    x, y = np.array([p for p, _ in observed]), np.array([float(r) for _, r in observed])
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)
    return ProbabilityMap(tuple(float(v) for v in model.X_thresholds_), tuple(float(v) for v in model.y_thresholds_))


def load_calibration(path: Path) -> Calibration:
    """Read a file written by `python -m classifier.eval --fit-calibration`."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read calibration file {path}: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != CALIBRATION_FORMAT:
        raise CalibrationError(
            f"{path} is not a calibration file (expected \"format\": \"{CALIBRATION_FORMAT}\"); "
            "write one with python -m classifier.eval --fit-calibration FILE"
        )
    levels = {}
    for level, points in raw.get("levels", {}).items():
        if not str(level).isdigit():
            raise CalibrationError(f"{path}: levels are keyed by depth (1, 2, ...), not {level!r}")
        levels[int(level)] = _points(path, f"level {level!r}", points)
    nodes = {parse_stem(name): _points(path, f"node {name!r}", points)
             for name, points in raw.get("nodes", {}).items()}
    threshold = raw.get("min_probability")
    if threshold is not None and not _is_probability(threshold):
        raise CalibrationError(f"{path}: min_probability must be a number in [0, 1] or null, not {threshold!r}")
    model = str(raw.get("model") or "")
    flags = {str(name): replace(_flag(path, str(name), section), model=model)
             for name, section in raw.get("flags", {}).items()}
    return Calibration(levels, str(raw.get("source", "")), threshold, nodes, flags, model)


def same_model(fitted: str, serving: str) -> bool:
    """Whether a calibration fitted for `fitted` reads `serving`'s probabilities: the same name,
    compared by its last path part (a folder and the name a server serves it under agree)."""
    return not fitted or Path(fitted).name.casefold() == Path(serving).name.casefold()


def fitted_for(calibration: Calibration | None, flags: Mapping[str, FlagCalibration], model: str,
               ) -> dict[str, FlagCalibration]:
    """The decisions that apply to `model`. A --calibration file fitted for another model is
    refused (`CalibrationError`, saying how to fit one); a shipped default fitted for another
    model is left out, so those capabilities take the default threshold on the raw probability."""
    if calibration is not None and not same_model(calibration.model, model):
        raise CalibrationError(
            f"the --calibration file was fitted for model {calibration.model!r}, not {model!r}, whose probabilities "
            "read otherwise: fit one for this model with python -m classifier.eval --llm ... --fit-calibration FILE "
            "(README: Confidence and calibration), or leave --calibration out")
    return {name: flag for name, flag in flags.items() if same_model(flag.model, model)}


def _is_probability(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def _flag(path: Path, name: str, section: object) -> FlagCalibration:
    if not isinstance(section, dict) or not _is_probability(section.get("min_probability")):
        raise CalibrationError(f"{path}: flags.{name} needs a min_probability in [0, 1]")
    points = section.get("map")
    mapping = _points(path, f"flags.{name}.map", points) if points is not None else None
    return FlagCalibration(float(section["min_probability"]), mapping, str(section.get("source", "")))


def _points(path: Path, what: str, points: object) -> ProbabilityMap:
    x, y = (points.get("x", []), points.get("y", [])) if isinstance(points, dict) else ([], [])
    if not (x and len(x) == len(y) and list(x) == sorted(x) and all(0 <= v <= 1 for v in [*x, *y])):
        raise CalibrationError(f"{path}: {what} needs sorted x and y lists of equal length in [0, 1]")
    return ProbabilityMap(tuple(map(float, x)), tuple(map(float, y)))


def save_calibration(calibration: Calibration, path: Path) -> Path:
    Path(path).write_text(json.dumps(calibration.to_json(), indent=1) + "\n", encoding="utf-8")
    return Path(path)


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    mean_probability: float  # 0 when the bin is empty
    accuracy: float  # share of right answers in the bin; 0 when empty


def reliability(probabilities: Sequence[float], right: Sequence[bool], bins: int = RELIABILITY_BINS) -> list[ReliabilityBin]:
    """Equal-width bins of [0, 1]: how often what the model gave about p was right."""
    p, r = np.asarray(probabilities, dtype=float), np.asarray(right, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    result = []
    for k in range(bins):
        members = index == k
        count = int(members.sum())
        result.append(ReliabilityBin(k / bins, (k + 1) / bins, count,
                                     float(p[members].mean()) if count else 0.0,
                                     float(r[members].mean()) if count else 0.0))
    return result


def expected_calibration_error(probabilities: Sequence[float], right: Sequence[bool],
                               bins: int = RELIABILITY_BINS) -> float:
    """The count-weighted mean gap between stated probability and observed accuracy."""
    table = reliability(probabilities, right, bins)
    total = sum(b.count for b in table)
    return sum(b.count * abs(b.mean_probability - b.accuracy) for b in table) / total if total else 0.0


def accepted_children(scored: Mapping[NodePath, float], min_probability: float,
                      max_paths: int) -> list[tuple[NodePath, float]]:
    """The children a threshold accepts: those reaching `min_probability`, most probable
    first, at most `max_paths`."""
    ranked = sorted(scored.items(), key=lambda item: -item[1])
    return [(child, p) for child, p in ranked if p >= min_probability][:max_paths]


def decide(probabilities: Mapping[NodePath, float], min_probability: float, max_paths: int) -> set[NodePath]:
    """The nodes accepted top-down from each node's (calibrated) probability: a child is
    considered only under an accepted parent, as the walk does."""
    accepted: set[NodePath] = set()
    frontier: list[NodePath] = [()]
    while frontier:
        parent = frontier.pop()
        children = {path: p for path, p in probabilities.items()
                    if len(path) == len(parent) + 1 and path[: len(parent)] == parent}
        for child, _ in accepted_children(children, min_probability, max_paths):
            accepted.add(child)
            frontier.append(child)
    return accepted
