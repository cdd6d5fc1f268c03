"""Calibration fit, apply, files, error measures and threshold decisions, with exact numbers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier.calibration import (
    Calibration, CalibrationError, ProbabilityMap, decide, expected_calibration_error, fit_calibration, load_calibration,
    reliability, save_calibration,
)  # fmt: skip


A, B, AX, BX = ("A",), ("B",), ("A", "X"), ("B", "X")


def test_isotonic_fit_maps_each_probability_to_the_share_right_there():
    pairs = [(A, 0.2, False), (B, 0.2, False), (A, 0.8, True), (B, 0.8, False), (AX, 0.3, True), (BX, 0.6, False)]
    calibration = fit_calibration(pairs)
    assert calibration.apply(A, 0.2) == 0.0 and calibration.apply(B, 0.8) == 0.5
    assert calibration.apply(A, 0.5) == pytest.approx(0.25)  # linear between the fitted points
    assert calibration.apply(A, 0.95) == 0.5 and calibration.apply(A, 0.0) == 0.0  # clipped outside them
    assert calibration.apply(AX, 0.3) == calibration.apply(BX, 0.6) == 0.5  # a violation is pooled: monotone
    assert calibration.apply(("A", "X", "Y"), 0.42) == 0.42  # a level without a map is left as is
    assert calibration.nodes == {}, "no node was observed often enough for a map of its own"


def test_a_node_observed_often_enough_gets_its_own_map():
    # A is right at 0.9 only half the time; B always. One map per level would say 0.75 for both.
    pairs = [(A, 0.9, k % 2 == 0) for k in range(20)] + [(B, 0.9, True)] * 20 + [(B, 0.1, False)] * 2
    calibration = fit_calibration(pairs, min_node_observations=20)
    assert set(calibration.nodes) == {A}, "B has too few wrong answers for a map of its own"
    assert calibration.apply(A, 0.9) == pytest.approx(0.5)
    assert calibration.apply(B, 0.9) == pytest.approx(30 / 40)  # the level's map: 30 right of 40 at 0.9
    assert fit_calibration(pairs, min_node_observations=0).nodes == {}, "0 fits levels only"
    assert fit_calibration(pairs, min_node_observations=21).nodes == {}


def test_a_file_round_trips_and_keeps_its_threshold(tmp_path: Path):
    calibration = Calibration({1: ProbabilityMap((0.1, 0.9), (0.0, 0.6))}, source="tune half", min_probability=0.35,
                              nodes={AX: ProbabilityMap((0.0, 1.0), (0.0, 0.2))})
    loaded = load_calibration(save_calibration(calibration, tmp_path / "cal.json"))
    assert loaded == calibration and loaded.apply(A, 0.5) == pytest.approx(0.3)
    assert loaded.apply(AX, 0.5) == pytest.approx(0.1) and loaded.apply(BX, 0.5) == 0.5
    assert json.loads((tmp_path / "cal.json").read_text())["nodes"] == {"A>X": {"x": [0.0, 1.0], "y": [0.0, 0.2]}}


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "cannot read calibration file"),
    (json.dumps({"levels": {}}), "is not a calibration file .*--fit-calibration"),
    (json.dumps({"format": "classifier-calibration/1", "levels": {"1": {"x": [0.5, 0.1], "y": [0, 1]}}}),
     "level '1' needs sorted x and y"),
    (json.dumps({"format": "classifier-calibration/1", "levels": {"one": {"x": [0.1], "y": [0.2]}}}),
     "levels are keyed by depth .* not 'one'"),
    (json.dumps({"format": "classifier-calibration/1", "levels": {}, "nodes": {"A>X": {"x": [0.1]}}}),
     "node 'A>X' needs sorted x and y"),
    (json.dumps({"format": "classifier-calibration/1", "levels": {}, "min_probability": 2}),
     "min_probability must be a number in"),
])  # fmt: skip
def test_a_bad_file_says_what_to_fix(tmp_path: Path, content: str, message: str):
    path = tmp_path / "cal.json"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=message):
        load_calibration(path)


def test_expected_calibration_error_and_reliability_bins():
    probabilities, right = [0.05, 0.95, 0.95], [False, True, False]
    bins = reliability(probabilities, right)
    assert [b.count for b in bins] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert (bins[9].mean_probability, bins[9].accuracy) == (pytest.approx(0.95), 0.5)
    # (1 x |0.05 - 0| + 2 x |0.95 - 0.5|) / 3
    assert expected_calibration_error(probabilities, right) == pytest.approx((0.05 + 0.9) / 3)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0  # p = 1 falls in the last bin


def test_decide_walks_top_down_with_threshold_and_cap():
    probabilities = {
        ("Food",): 0.7, ("Food", "Quality"): 0.6, ("Food", "Prices"): 0.5, ("Food", "Style"): 0.45,
        ("Service",): 0.2, ("Service", "General"): 0.9,  # under a rejected parent: never reached
        ("Drinks",): 0.4,
    }
    assert decide(probabilities, 0.4, 2) == {("Food",), ("Food", "Quality"), ("Food", "Prices"), ("Drinks",)}
    assert decide(probabilities, 0.65, 3) == {("Food",)}
    assert decide(probabilities, 0.0, 1) == {("Food",), ("Food", "Quality")}
