"""What the walk reads from gold, on hand-made vectors and probabilities: retrieval never
returns the comment itself, a labelled comment gets its label, the cascade's decision rule,
the eval's gold draw, and the Label Studio config and tasks."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from classifier.eval.gold import Example
from classifier.eval.learning import draw_gold
from classifier.gold.knowledge import Knowledge, labelled_as, nearest
from classifier.gold.label_studio import labelling_config, tasks_from_results
from classifier.gold.learned import LearnedModel, LevelThresholds, NodeModels
from classifier.taxonomy import format_path

from .trees import training

TREE = training()
PACE, CATERING = ("Delivery", "Pace"), ("Logistics", "Catering")


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def knowledge(model: LearnedModel | None = None) -> Knowledge:
    texts = ["The trainer rushed", "Lunch was cold", "Too fast and no coffee"]
    stems = [frozenset({PACE}), frozenset({CATERING}), frozenset({PACE, CATERING})]
    vectors = np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(1, 1, 0)])
    return Knowledge(TREE, texts, stems, vectors, embedder=None, model=model)  # type: ignore[arg-type]


def test_retrieval_never_returns_the_comment_itself_and_its_label_is_the_answer():
    guidance = knowledge().guidance(["the trainer  RUSHED", "Went too quickly", "The trainer rushed!"],
                                    np.stack([unit(1, 0, 0), unit(1, 0.5, 0), unit(1, 0.1, 0)]), examples=2,
                                    route="llm")
    assert 0 not in nearest(guidance.similarity[0], None, 3)  # its own text, case and spacing aside
    # Labelled already (the same text, or a near duplicate): the label is the answer.
    assert guidance.twins == {0: frozenset({PACE}), 2: frozenset({PACE})}
    assert nearest(guidance.similarity[1], None, 3) == [2, 0, 1]  # nearest first
    # Each example's answer at a node is its children there, or nothing (shown as "none of these").
    assert guidance.labelled(1, (), ["Delivery", "Logistics"]) == [
        ("Too fast and no coffee", ["Delivery", "Logistics"]), ("The trainer rushed", ["Delivery"])]
    # Below the root, comments about that node come first.
    assert [text for text, _ in guidance.labelled(1, ("Logistics",), ["Catering", "Venue"])] == [
        "Too fast and no coffee", "Lunch was cold"]


def model(rows_level1: LevelThresholds, rows_level2: LevelThresholds) -> LearnedModel:
    return LearnedModel("v", models=NodeModels.empty(3), levels={1: rows_level1, 2: rows_level2})


def guided(row: dict, route: str):
    thresholds = model(LevelThresholds(accept=0.5, sure_no=0.1, sure_yes=0.9),
                       LevelThresholds(accept=0.4, sure_no=0.2, sure_yes=0.8))
    guidance = knowledge(thresholds).guidance(["new comment"], np.stack([unit(0, 0, 1)]), examples=2, route=route)
    return guidance.__class__(**{**vars(guidance), "rows": [row]})


CHILDREN = [c.name for c in TREE.root.children]


def test_the_cascade_decides_a_node_alone_only_when_sure_of_every_child():
    sure = {(name,): 0.01 for name in CHILDREN} | {("Delivery",): 0.95}
    assert guided(sure, "cascade").split(0, (), CHILDREN) == ([(("Delivery",), 0.95)], [])
    unsure = sure | {("Logistics",): 0.5}
    accepted, left = guided(unsure, "cascade").split(0, (), CHILDREN)
    assert accepted == [] and left == ["Delivery", "Logistics"]  # the LLM chooses among those not surely wrong
    unmodelled = {k: v for k, v in sure.items() if k != ("Content",)}
    assert guided(unmodelled, "cascade").split(0, (), CHILDREN)[1] == ["Delivery", "Content"]  # in tree order


def test_the_learned_route_accepts_by_the_best_f1_threshold_and_never_asks():
    row = {(name,): 0.3 for name in CHILDREN} | {("Delivery",): 0.6, ("Delivery", "Pace"): 0.45}
    assert guided(row, "learned").split(0, (), CHILDREN) == ([(("Delivery",), 0.6)], [])
    assert guided(row, "learned").split(0, ("Delivery",), ["Pace", "Clarity"]) == ([(PACE, 0.45)], [])


def test_the_llm_route_leaves_every_child_to_the_llm():
    row = {(name,): 0.99 for name in CHILDREN}
    assert guided(row, "llm").split(0, (), CHILDREN) == ([], CHILDREN)


def test_the_eval_never_draws_a_text_of_the_evaluation_sample(tmp_path):
    data = tmp_path / "gold.csv"
    rows = [(f"s{k}", f"Sentence number {k}.") for k in range(30)] + [("dup", "sentence NUMBER 3.")]
    data.write_text("review_id,sentence_id,text,out_of_scope,n_opinions,l1_entities,l2_categories,opinions\n"
                    + "".join(f'r,{i},"{t}",False,0,,,[]\n' for i, t in rows), encoding="utf-8")
    held = [Example(f"s{k}", f"Sentence number {k}.", frozenset()) for k in range(10)]
    drawn = draw_gold(data, "semeval", 0, 42, held)
    assert {e.id for e in drawn} == {f"s{k}" for k in range(10, 30)}  # by id, and "dup" by its text
    assert len(draw_gold(data, "semeval", 5, 42, held)) == 5


def test_label_studio_config_mirrors_the_tree_as_a_leaves_only_taxonomy():
    view = ET.fromstring(labelling_config(TREE))
    control = view.find("Taxonomy")
    assert control.attrib["toName"] == view.find("Text").attrib["name"] and control.attrib["leafsOnly"] == "true"

    def paths(element, above=()):
        for choice in element.findall("Choice"):
            here = (*above, choice.attrib["value"])
            yield from paths(choice, here) if choice.findall("Choice") else [here]

    assert sorted(paths(control)) == sorted(TREE.leaf_paths())


def test_tasks_carry_the_results_as_scored_predictions_from_a_job_output_or_a_batch_output():
    result = {"text": "The trainer rushed", "classification_result": {
        "classification_paths": ["Training feedback>Delivery", "Training feedback>Delivery>Pace"],
        "node_results": {"Delivery": {"probability": 0.9}, "Pace": {"probability": 0.7}}}}
    empty = {"text": "Hello", "classification_result": {"classification_paths": [], "node_results": {}}}
    job_line = {"id": "b1", "custom_id": "c1", "response": {"status_code": 200, "body": {"results": [result, empty]}}}
    for content in (json.dumps(job_line) + "\n", json.dumps([result, empty])):
        first, second = tasks_from_results(content, TREE, "qwen-1.5b+gold")
        [prediction] = first["predictions"]
        assert first["data"] == {"text": "The trainer rushed"}
        assert prediction["model_version"] == "qwen-1.5b+gold" and prediction["score"] == 0.7
        assert prediction["result"] == [{"from_name": "topics", "to_name": "text", "type": "taxonomy",
                                         "value": {"taxonomy": [["Delivery", "Pace"]]}, "score": 0.7}]
        assert second["predictions"][0]["result"] == []
    assert format_path(None, PACE) == "Delivery>Pace"


def test_sure_thresholds_need_enough_held_back_gold_to_be_trusted():
    from classifier.gold.learned import fit_levels

    def held_back(n: int) -> tuple[list[dict], list[frozenset]]:
        rows = [{("Delivery",): 0.9 if k % 2 else 0.05} for k in range(n)]  # always right
        return rows, [frozenset({PACE}) if k % 2 else frozenset() for k in range(n)]

    few = fit_levels(*held_back(6), precision=0.9)[1]
    assert (few.sure_no, few.sure_yes) == (0.0, 1.01)  # right 3 times out of 3 proves little
    many = fit_levels(*held_back(200), precision=0.9)[1]
    assert many.sure_no >= 0.05 and many.sure_yes <= 0.9


def test_a_close_vector_is_the_same_comment_only_when_it_shares_most_words():
    # an encoder tuned on the labels puts comments of one label together: close, not the same
    labelled = ["The fish was stale and cold.", "Please add a dark mode."]
    similarity = np.array([[0.97, 0.1], [0.1, 0.98]])
    found = labelled_as(["The fish was stale and very cold!", "Could you support exporting to PDF?"], similarity,
                        {}, labelled)
    assert found == {0: 0}
