"""Deciding before detailing (alerts, recommendations, trend and the stem ones): the decision
read from the model's log-probabilities, the flag and the list agreeing in every case, and a
decision's calibration fitted, written, read and applied."""
import math

import numpy as np
import pytest

from classifier.calibration import (
    Calibration, CalibrationError, FlagCalibration, ProbabilityMap, load_calibration, save_calibration,
)  # fmt: skip
from classifier.capabilities.flags import ALERT_WORDS, RECOMMENDATION_WORDS, TREND_WORDS, Sorting
from classifier.cli import flag_calibrations
from classifier.eval.flags import FlagAnswer, best_flag_threshold, fit_flags, flag_scores, read_flags, redecided
from classifier.eval.gold import Example
from classifier.llm.errors import InvalidOutput
from classifier.llm.probabilities import choice_answer, option_probabilities
from classifier.prompts import ALERTS_TASK, RECOMMENDATIONS_TASK
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings
from tests.scripted import ScriptedProcessor, oracle
from tests.test_service import ALERT, GOLD, RECOMMENDATION, RUSHED, capability_answers
from tests.trees import training


def test_a_word_written_in_several_tokens_is_chosen_by_its_first():
    top = {"pr": math.log(0.5), "har": math.log(0.2), " viol": math.log(0.1), "Yes": math.log(0.1),
           "d": math.log(0.1)}
    words = ("praise", "description", "harassment", "violence", "danger")
    probabilities = option_probabilities(top, words)
    # "Yes" begins no word; "d" begins two and is shared between them; the rest renormalise.
    assert probabilities == pytest.approx({"praise": 0.5 / 0.9, "description": 0.05 / 0.9, "harassment": 0.2 / 0.9,
                                           "violence": 0.1 / 0.9, "danger": 0.05 / 0.9})
    assert Sorting(("harassment", "violence", "danger"), ("praise", "description")).probability(probabilities) == \
        pytest.approx(0.35 / 0.9)
    answer = choice_answer("pr", top, words)
    assert answer["choice"] == "praise" and answer["probabilities"] == probabilities
    assert choice_answer("d", top, words)["choice"] in {"description", "danger"}
    with pytest.raises(InvalidOutput, match="expected one of"):
        choice_answer("zz", top, words)


def test_one_token_options_read_as_before():
    top = {"A": math.log(0.6), "B": math.log(0.3), "AB": math.log(0.1)}
    assert option_probabilities(top, ("A", "B")) == pytest.approx({"A": 2 / 3, "B": 1 / 3})


def test_each_capabilitys_words_begin_differently_between_its_two_groups():
    for sorting in (ALERT_WORDS, RECOMMENDATION_WORDS, TREND_WORDS):
        assert not set(sorting.found) & set(sorting.other)
        assert len(set(sorting.words)) == len(sorting.words)


def test_a_flag_calibration_maps_then_compares():
    flag = FlagCalibration(0.5, ProbabilityMap((0.0, 0.2, 1.0), (0.0, 0.6, 0.9)))
    assert flag.decide(0.1) == (False, pytest.approx(0.3))
    assert flag.decide(0.2) == (True, pytest.approx(0.6))
    assert FlagCalibration(0.25).decide(0.25) == (True, 0.25)


def decision(words: dict[str, dict[str, float]]):
    """Decisions answered from `words` (a capability's word -> the probabilities), the rest as the service test does."""
    def answer(prompt, schema):
        if "options" in schema:
            return next(p for word, p in words.items() if word in schema["options"])
        return capability_answers(prompt, schema)
    return answer


async def classify(answer, texts, capabilities, **settings):
    processor = ScriptedProcessor(oracle(GOLD, answer))
    service = ClassificationService(processor, {"topics": training()}, ClassifierSettings(**settings))
    return (await service.classify(texts, capabilities))["results"], processor


async def test_details_are_asked_only_of_the_comments_past_the_threshold():
    sure = {"harassment": 0.7, "praise": 0.3}
    unsure = {"harassment": 0.3, "praise": 0.7}

    def answer(prompt, schema):
        if "options" in schema:
            return sure if "groped" in prompt.comment else unsure
        assert prompt.instructions.startswith(ALERTS_TASK) and "groped" in prompt.comment
        return {"alerts": [ALERT]}

    texts = ["The soup was cold", "He groped me in the lift", "Great content"]
    results, processor = await classify(answer, texts, ["alerts"])
    decisions = [c for c in processor.calls if "options" in c.schema]
    assert [len(c.prompts) for c in processor.calls] == [1] * 4, "each text asked for itself"
    assert len(decisions) == 3 and [c.prompts[0].comment for c in processor.calls if c not in decisions] == [
        "He groped me in the lift"], "one decision per text, details for the one past the threshold"
    assert "praise" in decisions[0].schema["options"] and decisions[0].prompts[0].question
    assert [r["alerts"]["has_alerts"] for r in results] == [False, True, False]
    assert results[1]["alerts"] == {"has_alerts": True, "probability": 0.7, "alerts": [{**ALERT, "probability": 0.7}],
                                    "source": "llm"}
    assert results[0]["alerts"] == {"has_alerts": False, "probability": 0.3, "alerts": [], "source": "llm"}
    # A calibration that makes 0.3 enough lets all three through.
    lenient = {"alerts": FlagCalibration(0.25)}
    results, processor = await classify(lambda p, s: unsure if "options" in s else {"alerts": [ALERT]}, texts,
                                        ["alerts"], flags=lenient)
    assert len(processor.calls) == 6 and all(r["alerts"]["has_alerts"] for r in results)


async def test_the_flag_and_the_list_agree_whatever_fails():
    def answer(prompt, schema):
        if "options" in schema:
            if prompt.comment == "down":
                return "engine went away"  # the decision fails
            return {"suggestion": 0.9, "complaint": 0.1}
        if prompt.instructions.startswith(RECOMMENDATIONS_TASK):
            return "cut off" if prompt.comment == "cut" else {"recommendations": [RECOMMENDATION]}
        return capability_answers(prompt, schema)

    results, _ = await classify(answer, ["fine", "down", "cut"], ["recommendations"])
    fine, down, cut = results
    assert fine["recommendations"]["has_recommendations"] is True and fine["recommendations"]["recommendations"]
    for failed, where in ((down, "decision"), (cut, "details")):
        assert "recommendations" not in failed, "no flag claimed without its list"
        assert failed["error"].startswith(f"recommendations ({where}): ")
    for result in results:
        value = result.get("recommendations")
        if value is not None:
            assert value["has_recommendations"] is bool(value["recommendations"])


async def test_the_details_schema_cannot_answer_an_empty_list():
    _, processor = await classify(decision({"suggestion": {"suggestion": 1.0}}), [RUSHED], ["recommendations"])
    details = processor.calls[-1].schema
    assert list(details["properties"]) == ["recommendations"] and details["required"] == ["recommendations"]
    assert details["properties"]["recommendations"]["minItems"] == 1


async def test_stem_decisions_detail_only_the_stems_that_pass():
    def answer(prompt, schema):
        if "options" in schema:
            return {"change": 0.8, "opinion": 0.2} if "Delivery>Pace" in prompt.instructions else {"opinion": 1.0}
        return capability_answers(prompt, schema)

    results, processor = await classify(answer, [RUSHED], ["stem_trend"])
    trends = results[0]["stem_trends"]
    assert trends["Logistics>Catering"] == [] and trends["Delivery>Pace"][0]["probability"] == 0.8
    assert sum(len(c.prompts) for c in processor.calls if "trends" in c.schema.get("properties", {})) == 1


def example(name: str, truth: bool) -> Example:
    return Example(id=f"{name}{truth}", text="", stems=frozenset(), flags={name: truth})


def test_scores_count_flagged_texts_without_one_and_types():
    examples = [example("alerts", True)] * 4 + [example("alerts", False)] * 6
    answers = ([{"alerts": FlagAnswer(True, 0.9, ("sexual_harassment",))}] * 3 + [{"alerts": FlagAnswer(False, 0.1)}]
               + [{"alerts": FlagAnswer(True, 0.8, ("bullying",))}] + [{"alerts": FlagAnswer(False, 0.1)}] * 5)
    scores = flag_scores(examples, answers, "alerts")
    assert (scores["true_positives"], scores["flagged"], scores["positives"], scores["negatives"]) == (3, 4, 4, 6)
    assert scores["recall"] == 0.75 and scores["precision"] == 0.75 and scores["false_share"] == pytest.approx(1 / 6)
    assert scores["typed_right"] == 0.75


def test_reading_a_wire_result_keeps_the_flag_probability_and_types():
    result = {"alerts": {"has_alerts": True, "probability": 0.8, "alerts": [{**ALERT, "probability": 0.8}]},
              "recommendations": {"has_recommendations": False, "recommendations": []}}
    assert read_flags(result) == {"alerts": FlagAnswer(True, 0.8, ("safety_concern",)),
                                  "recommendations": FlagAnswer(False, None, ())}


def test_the_threshold_holds_the_false_share_then_maximises_f1():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    truth = np.array([True, True, False, True, False, False, True, False])
    assert best_flag_threshold(p, truth, 1.0) == 0.6  # F1 .75 (0.3 also reaches .73)
    assert best_flag_threshold(p, truth, 0.0) == 0.8  # no negative may pass
    assert best_flag_threshold(p[truth == 0], truth[truth == 0], 0.25) == 0.7, "negatives only: the lowest that holds"


def test_a_fitted_decision_is_written_read_and_applied(tmp_path):
    examples = [example("recommendations", t) for t in [True] * 30 + [False] * 30]
    answers = [{"recommendations": FlagAnswer(False, p)} for p in
               [0.6 + 0.013 * k for k in range(30)] + [0.1 + 0.01 * k for k in range(30)]]
    fitted = fit_flags(examples, answers, ["recommendations"], "unit test")
    flag = fitted["recommendations"]
    assert flag.map is not None and flag.decide(0.95)[0] and not flag.decide(0.2)[0]
    decided = redecided(answers, fitted)
    assert flag_scores(examples, decided, "recommendations")["f1"] == 1.0
    path = save_calibration(Calibration({}, flags=fitted), tmp_path / "flags.json")
    assert load_calibration(path).flags == fitted
    # The --calibration file's own section wins over the shipped defaults, which fill the rest.
    defaults = save_calibration(Calibration({}, flags={"alerts": FlagCalibration(0.2), "trend": FlagCalibration(0.3)}),
                                tmp_path / "defaults.json")
    merged = flag_calibrations(Calibration({}, flags={"alerts": FlagCalibration(0.9)}), defaults)
    assert merged == {"alerts": FlagCalibration(0.9), "trend": FlagCalibration(0.3)}
    assert flag_calibrations(None, tmp_path / "absent.json") == {}


def test_a_bad_flag_section_is_refused_naming_it(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"format": "classifier-calibration/1", "levels": {}, "flags": {"alerts": {"min_probability": 2}}}')
    with pytest.raises(CalibrationError, match="flags.alerts needs a min_probability"):
        load_calibration(path)


def test_sorting_probability_adds_its_own_words():
    sorting = Sorting(("a", "b"), ("c",))
    assert sorting.words == ("c", "a", "b") and sorting.probability({"a": 0.2, "b": 0.3, "c": 0.5}) == 0.5


def test_a_calibration_applies_only_to_the_model_it_was_fitted_on(tmp_path):
    path = save_calibration(Calibration({}, flags={"alerts": FlagCalibration(0.9)}, model="Qwen2.5-Coder-1.5B-Instruct"),
                            tmp_path / "flags.json")
    shipped = load_calibration(path)
    assert shipped.model == "Qwen2.5-Coder-1.5B-Instruct" and shipped.flags["alerts"].model == shipped.model
    proc = ScriptedProcessor(oracle(GOLD, capability_answers))
    # Served under a folder path of the same name: the same model.
    proc.model = "/models/qwen2.5-coder-1.5b-instruct"
    same = ClassificationService(proc, {"topics": training()}, ClassifierSettings(flags=shipped.flags))
    assert same.settings.flags == shipped.flags
    # Another model: the shipped thresholds are left out (the default applies) ...
    proc.model = "SmolLM2-135M-Instruct"
    other = ClassificationService(proc, {"topics": training()}, ClassifierSettings(flags=shipped.flags))
    assert other.settings.flags == {}
    # ... and a --calibration file fitted for it is refused, saying how to fit one.
    with pytest.raises(CalibrationError, match="fitted for model 'Qwen2.5-Coder-1.5B-Instruct', not "
                                               "'SmolLM2-135M-Instruct'.*--fit-calibration"):
        ClassificationService(proc, {"topics": training()}, ClassifierSettings(calibration=shipped))
    # A calibration that names no model (written before models were recorded) applies to any.
    unnamed = ClassifierSettings(calibration=Calibration({}), flags={"alerts": FlagCalibration(0.9)})
    assert ClassificationService(proc, {"topics": training()}, unnamed).settings.flags == unnamed.flags
