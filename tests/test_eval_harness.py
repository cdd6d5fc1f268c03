"""The evaluation command end to end on the real CPU engine with the embedded model: a
30-sentence SemEval restaurants sample. It checks plumbing, not a score: every text gets a
result or an explicit error, and the report is complete. One engine start."""
import json
import subprocess
import sys

import pytest

from classifier.eval.gold import load_semeval, sample
from tests.conftest import CONFIGS, ROOT
from tests.models import TEST_LLM

pytestmark = pytest.mark.engine

SIZE, SEED = 30, 7
REPORT_KEYS = {
    "label", "dataset", "taxonomy", "capabilities", "settings", "backend", "model", "texts", "levels", "hierarchical",
    "exact_path_accuracy", "baseline", "stem_polarity", "flags", "cost", "error_share", "truncation_share", "prefix_cache",
    "per_text", "decided",
}  # fmt: skip
COST_KEYS = {
    "llm_calls_per_text", "prompt_tokens_per_text", "completion_tokens_per_text", "texts_per_second", "seconds",
    "usage",
}  # fmt: skip


def test_harness_reports_every_text_and_every_field(shared_data, tmp_path):
    data = shared_data / "semeval16_restaurants_train.csv"
    out = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "classifier.eval", "--data", str(data), "--kind", "semeval",
        "--config", str(CONFIGS / "restaurants.json"), "--sample", str(SIZE), "--seed", str(SEED),
        "--capabilities", "classification,stem_polarity", "--max-paths", "1", "--llm", TEST_LLM, "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "exact-path accuracy" in done.stdout, "the table is printed"

    report = json.loads(out.read_text())
    assert set(report) == REPORT_KEYS
    assert report["texts"] == SIZE and report["backend"] == "local"
    assert report["capabilities"] == ["classification", "stem_polarity"]
    assert report["flags"] == {}, "no decided capability was asked"
    assert set(report["decided"]) <= {"llm"}, "without gold the LLM decides every node"
    expected = sample(load_semeval(data), SIZE, SEED)
    assert [t["id"] for t in report["per_text"]] == [e.id for e in expected], "one result per text, in order"
    for text in report["per_text"]:
        assert text["classified"] or text["error"], f"text {text['id']} has neither a result nor an error"
        assert set(text["polarity"]) == set(text["predicted"])

    assert [lv["level"] for lv in report["levels"]] == [1, 2]
    for level in report["levels"]:
        for kind in ("micro", "macro"):
            assert all(0.0 <= level[kind][m] <= 1.0 for m in ("precision", "recall", "f1"))
        assert level["gold"] > 0 and level["predicted"] >= 0
    assert 0.0 <= report["exact_path_accuracy"] <= 1.0
    assert set(report["stem_polarity"]) == {"accuracy", "pairs"}
    assert set(report["cost"]) == COST_KEYS
    assert report["cost"]["llm_calls_per_text"] >= 1 and report["cost"]["prompt_tokens_per_text"] > 0
    assert report["cost"]["completion_tokens_per_text"] > 0 and report["cost"]["texts_per_second"] > 0
    assert 0.0 <= report["error_share"] <= 1.0 and 0.0 <= report["truncation_share"] <= 1.0
    cache, usage = report["prefix_cache"], report["cost"]["usage"]
    assert cache["queries"] == usage["prompt_tokens"] and 0 < cache["hits"] <= cache["queries"], cache
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_the_decisions_are_scored_and_fitted_from_labelled_data(shared_data, tmp_path):
    """Suggestions (recommendations) on the real engine: the flag section, then a fit written
    into a calibration file that keeps what the file already held."""
    calibration = tmp_path / "flags.json"
    calibration.write_text(json.dumps({"format": "classifier-calibration/1", "levels": {},
                                       "flags": {"alerts": {"min_probability": 0.5, "map": None}}}))
    common = [sys.executable, "-m", "classifier.eval", "--data", str(shared_data / "semeval19_suggestions_train.csv"),
              "--kind", "suggestions", "--sample", "24", "--seed", "3", "--capabilities", "recommendations",
              "--llm", TEST_LLM]
    done = subprocess.run([*common, "--out", str(tmp_path / "r.json")], cwd=ROOT, capture_output=True, text=True,
                          timeout=840)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    scores = json.loads((tmp_path / "r.json").read_text())["flags"]["recommendations"]
    assert scores["texts"] == 24 and scores["positives"] + scores["negatives"] == 24 - scores["unanswered"]
    assert "recommendations: " in done.stdout and "exact-path accuracy" not in done.stdout, "no topic table"
    fitted = subprocess.run([*common, "--fit-calibration", str(calibration)], cwd=ROOT, capture_output=True, text=True,
                            timeout=840)
    assert fitted.returncode == 0, fitted.stdout[-3000:] + fitted.stderr[-3000:]
    flags = json.loads(calibration.read_text())["flags"]
    assert set(flags) == {"alerts", "recommendations"}, "the other capability's section is kept"
    assert 0.0 <= flags["recommendations"]["min_probability"] <= 1.0 and flags["recommendations"]["map"]["x"]
