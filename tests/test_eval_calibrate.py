"""Fitting and checking calibration in the evaluation: observations, thresholds, settings."""
from __future__ import annotations

import json

import pytest

from classifier.calibration import Calibration, ProbabilityMap
from classifier.eval.__main__ import settings_record
from classifier.eval.calibrate import best_threshold, exhaustive, observations, threshold_table
from classifier.eval.gold import Example, part
from classifier.eval.harness import Prediction
from classifier.settings import ClassifierSettings, EngineSettings

FOOD, QUALITY, SERVICE = ("Food",), ("Food", "Quality"), ("Service",)
EXAMPLES = [
    Example("1", "The fish was great", frozenset({QUALITY})),
    Example("2", "Rude waiter", frozenset({(*SERVICE, "General")})),
]
PREDICTIONS = [  # every node scored, as an exhaustive run reports them
    Prediction(frozenset(), {}, probabilities={FOOD: 0.9, QUALITY: 0.6, SERVICE: 0.3}),
    Prediction(frozenset(), {}, probabilities={FOOD: 0.5, SERVICE: 0.45, (*SERVICE, "General"): 0.4}),
]


def test_observations_pair_each_scored_node_with_the_gold_and_skip_failed_texts():
    failed = Prediction(frozenset(), {}, error="engine said no", probabilities={FOOD: 0.9})
    pairs = observations(EXAMPLES + EXAMPLES[:1], PREDICTIONS + [failed])
    assert sorted(pairs) == sorted([
        (FOOD, 0.9, True), (QUALITY, 0.6, True), (SERVICE, 0.3, False),  # ancestors of a gold stem count as gold
        (FOOD, 0.5, False), (SERVICE, 0.45, True), ((*SERVICE, "General"), 0.4, True),
    ])


def test_threshold_table_decides_as_the_walk_and_the_best_is_chosen():
    table = threshold_table(EXAMPLES, PREDICTIONS, Calibration({}), max_paths=3, depth=2, thresholds=(0.2, 0.42, 0.55))
    by_t = {row["min_probability"]: row["micro_f1"] for row in table}
    # 0.2: everything; level 1 predicts Food, Service, Food, Service against Food, Service.
    assert by_t[0.2] == pytest.approx([2 * 2 / (4 + 2), 2 * 2 / (2 + 2)])
    # 0.42: Food+Quality for text 1; Food and Service (but not General, 0.4) for text 2.
    assert by_t[0.42] == pytest.approx([2 * 2 / (3 + 2), 2 * 1 / (1 + 2)])
    # 0.55: Food+Quality for text 1 only.
    assert by_t[0.55] == pytest.approx([2 * 1 / (1 + 2), 2 * 1 / (1 + 2)])
    assert best_threshold(table) == 0.2


def test_exhaustive_settings_accept_every_node_uncalibrated():
    settings = ClassifierSettings(strategy="score", min_probability=0.5, max_paths=2, calibration=Calibration({}))
    assert (exhaustive(settings).min_probability, exhaustive(settings).max_paths, exhaustive(settings).calibration) == (
        0.0, 19, None)
    for strategy in ("select", "flat"):  # their prompts say "at most 2"
        assert exhaustive(ClassifierSettings(strategy=strategy, max_paths=2)).max_paths == 2


def test_tune_and_report_halves_do_not_overlap():
    examples = [Example(str(k), "t", frozenset()) for k in range(7)]
    tune, report = part(examples, "tune"), part(examples, "report")
    assert [e.id for e in tune + report] == [e.id for e in examples] and len(tune) == 3
    assert part(examples, "all") == examples


async def test_a_scored_run_through_the_service_fits_reports_and_draws_its_calibration(tmp_path):
    from classifier.calibration import fit_calibration
    from classifier.eval.calibrate import calibration_section
    from classifier.eval.chart import render_reliability
    from classifier.eval.harness import run
    from classifier.eval.report import build_report, format_table
    from classifier.service import ClassificationService
    from tests.scripted import SCORES, ScriptedProcessor, scored
    from tests.trees import training

    examples = [Example("1", "The trainer rushed and the lunch was cold",
                        frozenset({("Delivery", "Pace"), ("Logistics", "Catering")})),
                Example("2", "Great content", frozenset({("Content",)}))]
    settings = exhaustive(ClassifierSettings(strategy="score"))
    service = ClassificationService(ScriptedProcessor(scored), {"topics": training()}, settings)
    result = await run(service, examples, ["classification"])
    # The wire's node_results (keyed by name) come back as probabilities by path.
    assert result.predictions[0].probabilities[("Delivery",)] == SCORES[()]["Delivery"]
    assert result.predictions[0].probabilities[("Logistics", "Venue")] == SCORES[("Logistics",)]["Venue"]
    pairs = observations(examples, result.predictions)
    assert (("Logistics", "Venue"), 0.3, False) in pairs and (("Logistics",), 0.35, True) in pairs
    report = build_report(examples, result, training(), {"label": "score", "taxonomy": "topics"})
    [raw] = threshold_table(examples, result.predictions, Calibration({}), 3, 2, (0.4,))
    report["calibration"] = {**calibration_section(pairs, fit_calibration(pairs)), "fitted_here": True,
                             "file": "cal.json", "thresholds": [], "raw_at_min_probability": raw}
    assert report["calibration"]["levels"]["1"]["observations"] == 6  # 3 children at the root, 2 texts
    table = format_table(report)
    assert "calibration fitted on this run (in-sample) cal.json:" in table and "level 2: expected calibration" in table
    # Raw p >= 0.4 accepts Delivery (0.6) and Pace (0.9) for both texts (the script scores by node, not text):
    # level 1, 1 right of 2 against 3 gold; level 2, 1 right of 2 against 2.
    assert "uncalibrated, at --min-probability 0.4: micro F1 L1 0.400, L2 0.500" in table
    png = render_reliability(report, tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_with_node_maps_records_its_settings_as_json():
    calibration = Calibration({1: ProbabilityMap((0.0, 1.0), (0.0, 0.5))},
                              nodes={FOOD: ProbabilityMap((0.0, 1.0), (0.0, 0.2))})
    record = settings_record(ClassifierSettings(calibration=calibration), EngineSettings())
    assert json.loads(json.dumps(record, default=str))["classifier"]["calibration"]["nodes"] == {
        "Food": {"x": [0.0, 1.0], "y": [0.0, 0.2]}}
    assert record["classifier"]["strategy"] == "select"
