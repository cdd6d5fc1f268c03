"""The harness and its report end to end over a scripted processor (no engine): the
service's wire results become the right predictions, scores, costs and shares."""
import json

import pytest
from click.testing import CliRunner

from classifier.eval.__main__ import main
from classifier.eval.cache import PrefixCacheCounters, parse_counters
from classifier.eval.chart import render_chart
from classifier.eval.gold import Example
from classifier.eval.harness import read_prediction, run
from classifier.eval.report import build_report, comparison_table, format_table
from classifier.prompts import STEMS_POLARITY_TASK, keyword_examples, select_prompt
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings
from tests.conftest import CONFIGS
from tests.scripted import ScriptedProcessor, oracle
from tests.trees import training

PACE, CATERING, CONTENT = ("Delivery", "Pace"), ("Logistics", "Catering"), ("Content",)
EXAMPLES = [
    Example("1", "The trainer rushed and the lunch was cold", frozenset({PACE, CATERING}),
            {PACE: "Negative", CATERING: "Negative"}),
    Example("2", "Great content", frozenset({CONTENT}), {CONTENT: "Positive"}),
    Example("3", "Nothing to say", frozenset()),
]
GOLD = {e.text: e.stems for e in EXAMPLES}


def polarity_negative(prompt, schema):
    """Every stem of a text judged Negative, in one answer."""
    assert prompt.instructions.startswith(STEMS_POLARITY_TASK)
    return dict.fromkeys(schema["properties"], "Negative")


async def evaluate(answer, capabilities=("classification", "stem_polarity"), reader=None, **settings):
    processor = ScriptedProcessor(answer)
    service = ClassificationService(processor, {"topics": training()}, ClassifierSettings(**settings))
    result = await run(service, EXAMPLES, list(capabilities), **({"prefix_cache": reader} if reader else {}))
    meta = {"label": "scripted", "taxonomy": "topics", "capabilities": list(capabilities)}
    return build_report(EXAMPLES, result, training(), meta), processor


@pytest.mark.parametrize("strategy", ["select", "per_node"])
async def test_a_perfect_classifier_scores_one_and_its_cost_is_counted(strategy):
    report, processor = await evaluate(oracle(GOLD, polarity_negative), strategy=strategy)
    assert [(lv["level"], lv["micro"]["f1"], lv["macro"]["f1"]) for lv in report["levels"]] == [(1, 1.0, 1.0),
                                                                                                (2, 1.0, 1.0)]
    assert report["exact_path_accuracy"] == 1.0
    # Each gold set occurs once: the baseline predicts the first, {Pace, Catering}, for all three.
    assert report["baseline"]["predicted"] == ["Delivery>Pace", "Logistics>Catering"]
    assert report["baseline"]["exact_path_accuracy"] == pytest.approx(1 / 3)
    # Level 1: text 1 TP Delivery, Logistics; texts 2 and 3 two FP each, text 2 FN Content.
    assert report["baseline"]["levels"][0]["micro"] == {"precision": pytest.approx(1 / 3),
                                                         "recall": pytest.approx(2 / 3), "f1": pytest.approx(4 / 9)}
    # Three stems found, all asked: two gold Negative, one gold Positive.
    assert report["stem_polarity"] == {"accuracy": pytest.approx(2 / 3), "pairs": 3}
    assert report["cost"]["llm_calls_per_text"] == processor.usage.llm_calls / 3
    assert report["cost"]["prompt_tokens_per_text"] == processor.usage.prompt_tokens / 3
    assert report["cost"]["texts_per_second"] > 0
    assert (report["error_share"], report["truncation_share"], report["prefix_cache"]) == (0.0, 0.0, None)
    assert report["per_text"][0]["predicted"] == ["Delivery>Pace", "Logistics>Catering"]
    assert report["per_text"][0]["polarity"] == {"Delivery>Pace": "Negative", "Logistics>Catering": "Negative"}


async def test_a_failed_text_is_counted_as_an_error_and_scored_on_what_it_kept():
    base = oracle(GOLD, polarity_negative)

    def answer(prompt, schema):
        if prompt.comment == "Great content":
            return "engine fell over"
        return base(prompt, schema)

    report, _ = await evaluate(answer)
    assert report["error_share"] == pytest.approx(1 / 3)
    assert "engine fell over" in report["per_text"][1]["error"]
    assert report["per_text"][1]["predicted"] == []
    assert report["exact_path_accuracy"] == pytest.approx(2 / 3)
    level1 = report["levels"][0]["micro"]
    assert (level1["precision"], level1["recall"]) == (1.0, pytest.approx(2 / 3))


async def test_polarity_is_not_scored_unless_asked():
    report, processor = await evaluate(oracle(GOLD), capabilities=("classification",))
    assert report["stem_polarity"] is None
    assert all("polarity" not in c.schema["properties"] for c in processor.calls)


async def test_prefix_cache_counters_are_the_difference_over_the_run():
    readings = iter([PrefixCacheCounters(100, 40), PrefixCacheCounters(1100, 840)])

    async def reader():
        return next(readings)

    report, _ = await evaluate(oracle(GOLD, polarity_negative), reader=reader)
    assert report["prefix_cache"] == {"queries": 1000, "hits": 800, "hit_rate": 0.8}


def test_read_prediction_drops_the_prefix_and_keeps_only_complete_stems_for_polarity():
    result = {
        "classification_result": {"classification_paths": ["Acme>Delivery", "Acme>Delivery>Pace", "Acme>Logistics"]},
        "stem_polarity": {"Delivery>Pace": {"polarity": "Mixed"}},
        "error": "classification at Logistics: boom",
        "truncated": True,
    }
    prediction = read_prediction(result, training())
    assert prediction.paths == {("Delivery",), PACE, ("Logistics",)}
    assert prediction.stems == {PACE} and prediction.polarity == {PACE: "Mixed"}
    assert prediction.error == "classification at Logistics: boom" and prediction.truncated
    assert prediction.classified
    failed = read_prediction({"text": "x", "error": "classification: down"}, training())
    assert failed.paths == frozenset() and not failed.classified


async def test_table_comparison_and_chart_render_a_report(tmp_path):
    report, _ = await evaluate(oracle(GOLD, polarity_negative))
    table = format_table(report)
    assert "exact-path accuracy 1.000 (always predicting" in table and "stem-polarity accuracy 0.667 on 3" in table
    assert "hierarchical P 1.000  R 1.000  F1 1.000" in table
    rows = comparison_table([report, {**report, "label": "other"}]).splitlines()
    assert rows[0].startswith("| run | L1 micro F1 | L2 micro F1 | L1 macro F1 | L2 macro F1 | hier. F1 | exact path |")
    assert rows[3].startswith("| other | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 0.667 |")
    assert rows[4].startswith("| baseline: always Delivery>Pace + Logistics>Catering | 0.444 | 0.500 |") and len(rows) == 5
    png = render_chart([report], tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(report)  # the whole report is JSON as it stands


def test_parse_counters_sums_engines_and_is_none_without_prefix_caching():
    text = (
        "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n"
        "# TYPE vllm:prefix_cache_queries_total counter\n"
        'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 900.0\n'
        'vllm:prefix_cache_queries_total{engine="1",model_name="m"} 100.0\n'
        "# TYPE vllm:prefix_cache_hits_total counter\n"
        'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 700.0\n'
        'vllm:prefix_cache_hits_created{engine="0",model_name="m"} 1.7e9\n'
    )
    assert parse_counters(text) == PrefixCacheCounters(1000, 700)
    assert parse_counters("# TYPE other counter\nother_total 3.0\n") is None


def test_few_shot_examples_come_from_keywords_and_sit_in_the_shared_prefix():
    tree = training()
    examples = keyword_examples(tree.node(("Delivery",)).children, reasoning=False)
    assert examples.splitlines() == [
        '- A comment about "rushed" -> {"topics": ["Pace"]}',
        '- A comment about something none of the topics covers -> {"topics": ["none of these"]}',
    ]
    plain = select_prompt(tree, (), "hi", max_paths=3, reasoning=True)
    shots = select_prompt(tree, (), "hi", max_paths=3, reasoning=True, few_shot=True)
    assert "Examples:" not in plain.instructions
    assert '- A comment about "trainer" -> {"topics": ["Delivery"], "reason": "It mentions trainer."}' in (
        shots.instructions)
    assert shots.comment == "hi"


def test_the_command_refuses_a_taxonomy_that_lacks_the_gold_stems_before_starting_an_engine(shared_data):
    result = CliRunner().invoke(main, [
        "--data", str(shared_data / "semeval16_laptops_train.csv"), "--kind", "semeval",
        "--config", str(CONFIGS / "restaurants.json"), "--sample", "20",
    ])  # fmt: skip
    assert result.exit_code == 2
    assert "gold stems missing from taxonomy" in result.output and "restaurants.json" in result.output
    assert "--config" in result.output
