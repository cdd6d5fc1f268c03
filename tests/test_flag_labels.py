"""Flag labels (alerts, recommendations, trend): read from a CSV and the labelled files' shapes
and refused with the line and column named; kept apart from topic labels; the decision they
make (a labelled text's label, the learned classifier where it is sure, else the LLM's)."""
from __future__ import annotations

import numpy as np
import pytest

from classifier.eval.gold import load_safecity, load_suggestions
from classifier.gold.flag_labels import FlagLabel, FlagStore, from_flags, read_flags_csv
from classifier.gold.flag_models import FlagModel
from classifier.gold.labels import LabelError
from classifier.gold.learned import LearnedModel, LevelThresholds, NodeModels
from classifier.jobs.store import JobStore
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings
from tests.scripted import ScriptedProcessor
from tests.test_service import ALERT
from tests.trees import training


def test_a_flags_csv_reads_each_column_and_refuses_a_bad_value_by_line(tmp_path):
    good = tmp_path / "flags.csv"
    good.write_text("text,alerts,alert_type,recommendations,trend\n"
                    "The fire exit was locked,1,safety_concern,,\nMore exercises please,0,,yes,\n", encoding="utf-8")
    assert read_flags_csv(good) == [FlagLabel("The fire exit was locked", "alerts", True, "safety_concern"),
                                    FlagLabel("More exercises please", "alerts", False),
                                    FlagLabel("More exercises please", "recommendations", True)]
    bad = tmp_path / "bad.csv"
    bad.write_text("text,alerts\nok,1\nwrong,maybe\n", encoding="utf-8")
    with pytest.raises(LabelError, match=r"bad.csv line 3: alerts is 'maybe'; write 1 or 0"):
        read_flags_csv(bad)
    none = tmp_path / "none.csv"
    none.write_text("text,paths\nok,Food>Quality\n", encoding="utf-8")
    with pytest.raises(LabelError, match="at least one of alerts, recommendations, trend"):
        read_flags_csv(none)


def test_the_labelled_files_give_flag_labels_and_a_store_keeps_them_per_owner(shared_data, tmp_path):
    suggestions = [l for e in load_suggestions(shared_data / "semeval19_suggestions_train.csv")[:50]
                   for l in from_flags(e.text, e.flags)]
    assert {l.capability for l in suggestions} == {"recommendations"} and any(l.value for l in suggestions)
    reports = [l for e in load_safecity(shared_data / "safecity_train.csv")[:5]
               for l in from_flags(e.text, e.flags, "sexual_harassment")]
    assert all(l.capability == "alerts" and l.value and l.detail == "sexual_harassment" for l in reports)
    store = FlagStore(JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path).engine)
    assert store.put(suggestions, source="import", owner="cli") == len({l.key for l in suggestions})
    assert len(store.labels("cli", "recommendations")) == len({l.key for l in suggestions})
    assert store.labels("k1", "recommendations") == [] and store.labels("cli", "alerts") == []


def flag_model(sure_no: float, sure_yes: float) -> FlagModel:
    """Two labelled comments and a model of probability expit(10 * (x0 - 0.5)) for a vector x."""
    weights = np.zeros((1, 3, 4), dtype=np.float32)
    weights[0, :, 0] = 10.0
    bias, slope, offset = (np.full((1, 3), v, dtype=np.float32) for v in (-5.0, -1.0, 0.0))
    model = LearnedModel("flags/1", NodeModels((("alerts",),), weights, bias, slope, offset),
                         {1: LevelThresholds(0.5, sure_no, sure_yes)})
    gold = np.array([[0, 0, 1, 0], [0, 0, 0, 1]], np.float32)  # far from every new comment below
    return FlagModel(["He groped me", "Lunch was cold"], [True, False], gold, model)


def test_a_labelled_text_gets_its_label_and_the_learned_model_decides_only_where_sure():
    flag = flag_model(sure_no=0.3, sure_yes=0.95)
    vectors = np.array([[0, 1, 0, 0], [0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0], [0.5, 0.5, 0, 0]], np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = ["he GROPED me", "new one", "another", "unsure"]
    verdicts = flag.verdicts("alerts", texts, vectors, "cascade")
    assert verdicts[0] is not None and (verdicts[0].passed, verdicts[0].source) == (True, "gold")
    assert verdicts[1] is not None and (verdicts[1].passed, verdicts[1].source) == (True, "learned")
    assert verdicts[2] is not None and (verdicts[2].passed, verdicts[2].source) == (False, "learned")
    assert verdicts[3] is None  # neither sure: the LLM decides
    learned = flag.verdicts("alerts", texts[1:], vectors[1:], "learned")
    assert [v.passed for v in learned if v] == [True, False, True]  # the best-F1 threshold, 0.5, decides all


async def test_what_the_labels_decide_costs_no_llm_decision_and_the_rest_is_asked():
    asked: list[str] = []

    def answer(prompt, schema):
        asked.append(prompt.comment)
        return {"harassment": 0.9, "praise": 0.1} if "options" in schema else {"alerts": [ALERT]}

    proc = ScriptedProcessor(answer)
    svc = ClassificationService(proc, {"topics": training()}, ClassifierSettings())

    class Labels:
        async def verdicts(self, capability, texts, route):
            from classifier.gold.flag_models import Verdict
            return [Verdict(False, 0.01, "learned") if t == "Lunch was cold" else None for t in texts]

    svc.flag_knowledge["cli"] = Labels()  # type: ignore[assignment]
    body = await svc.classify(["Lunch was cold", "He groped me in the lift"], ["alerts"])
    ordinary, harassed = (r["alerts"] for r in body["results"])
    assert ordinary == {"has_alerts": False, "probability": 0.01, "alerts": [], "source": "learned"}
    assert harassed["has_alerts"] and harassed["source"] == "llm"
    assert "Lunch was cold" not in asked  # decided by the labels: no LLM call at all
