import asyncio
import json
import math

import pytest

from classifier.calibration import Calibration, ProbabilityMap
from classifier.hierarchy import HierarchicalClassifier
from classifier.llm.base import ItemResult
from classifier.prompts import NONE_OF_THESE
from classifier.settings import ClassifierSettings
from classifier.taxonomy import taxonomy_from_dict
from tests.scripted import HoldingProcessor, ScriptedProcessor, oracle, scored, topic_path, until
from tests.trees import TRAINING, training

GOLD = {
    "The trainer rushed and the lunch was cold": [("Delivery", "Pace"), ("Logistics", "Catering")],
    "Great content": [("Content",)],
    "Nothing to say": [],
}


def walker(processor, **settings) -> HierarchicalClassifier:
    return HierarchicalClassifier(processor, ClassifierSettings(**settings))


async def test_select_prompts_offer_exactly_the_nodes_children():
    tree = training()
    proc = ScriptedProcessor(oracle(GOLD))
    await walker(proc).classify(list(GOLD), tree)
    assert proc.prompts, "no prompt was sent"
    for call in proc.calls:
        node = tree.node(topic_path(call.prompts[0]))
        children = [c.name for c in node.children]
        assert call.schema["properties"]["topics"]["items"]["enum"] == children + [NONE_OF_THESE]
        for prompt in call.prompts:
            assert topic_path(prompt) == topic_path(call.prompts[0]), "one call mixes nodes"
            assert prompt.instructions.startswith("You sort comments")
            for path, other in tree.nodes():
                offered = other.name in children and path[:-1] == topic_path(prompt)
                line = f"- {other.name}" + (f": {other.description}" if other.description else "")
                assert (line in prompt.instructions.splitlines()) == offered, (other.name, prompt.instructions)
                if other.definition:
                    assert (f"Definition: {other.definition}" in prompt.instructions) == offered
    comments = {p.comment for p in proc.prompts}
    assert comments == set(GOLD), "every comment goes last, as the user message, unchanged"


@pytest.mark.parametrize("strategy", ["select", "flat", "per_node", "score"])
async def test_every_classification_prompt_states_what_the_taxonomy_covers(strategy):
    tree = taxonomy_from_dict({**TRAINING, "description": "Course feedback",
                               "definition": "A comment that judges nothing belongs to no topic."})
    proc = ScriptedProcessor(scored if strategy == "score" else oracle(GOLD))
    await walker(proc, strategy=strategy).classify(list(GOLD), tree)
    assert proc.prompts and all(
        "\nThe taxonomy: Course feedback. A comment that judges nothing belongs to no topic.\n" in p.instructions
        for p in proc.prompts)
    await walker(proc := ScriptedProcessor(oracle(GOLD)), strategy="flat").classify(list(GOLD), training())
    assert "The taxonomy:" not in proc.prompts[0].instructions, "a root that says nothing adds no line"


async def test_select_walks_several_paths_and_stops_at_leaves_and_none():
    proc = ScriptedProcessor(oracle(GOLD))
    found = await walker(proc).classify(list(GOLD), training())
    assert found[0].accepted == [("Delivery",), ("Delivery", "Pace"), ("Logistics",), ("Logistics", "Catering")]
    assert found[1].accepted == [("Content",)]
    assert found[2].accepted == []
    # Each text asked on its own: 3 at the root, then text 0 on Delivery and on Logistics.
    # Content is a leaf and "none" stops text 2: nothing more is asked.
    assert all(len(c.prompts) == 1 for c in proc.calls)
    assert sorted((p.comment, topic_path(p)) for p in proc.prompts) == [
        ("Great content", ()), ("Nothing to say", ()), ("The trainer rushed and the lunch was cold", ()),
        ("The trainer rushed and the lunch was cold", ("Delivery",)),
        ("The trainer rushed and the lunch was cold", ("Logistics",))]
    assert found[0].node_results[("Delivery", "Pace")] == {  # no token log-probabilities from this processor
        "is_relevant": True, "confidence": 3, "probability": None, "reasoning": "scripted", "excerpt": "",
            "source": "llm"}


async def test_equal_texts_get_separate_results_in_input_order():
    texts = ["Great content", "The trainer rushed and the lunch was cold", "Great content"]
    proc = ScriptedProcessor(oracle(GOLD))
    found = await walker(proc).classify(texts, training())
    assert [r.accepted for r in found] == [
        [("Content",)],
        [("Delivery",), ("Delivery", "Pace"), ("Logistics",), ("Logistics", "Catering")],
        [("Content",)],
    ]
    assert sum(topic_path(p) == () for p in proc.prompts) == 3, "each text asked for itself"


async def test_select_caps_paths_and_ignores_duplicates_and_none_beside_topics():
    def answer(prompt, schema):
        enum = schema["properties"]["topics"]["items"]["enum"]
        return {"topics": [enum[0], enum[0], NONE_OF_THESE, *enum[1:-1]], "reason": ""}

    proc = ScriptedProcessor(answer)
    found = await walker(proc, max_paths=2).classify(["x"], training())
    assert found[0].accepted == [("Delivery",), ("Delivery", "Pace"), ("Delivery", "Clarity"), ("Logistics",),
                                 ("Logistics", "Catering"), ("Logistics", "Venue")]
    assert proc.calls[0].schema["properties"]["topics"]["maxItems"] == 2


async def test_a_failed_answer_is_that_texts_error_only():
    base = oracle(GOLD)

    def answer(prompt, schema):
        if prompt.comment == "Great content":
            return "engine said no"
        return base(prompt, schema)

    found = await walker(ScriptedProcessor(answer)).classify(list(GOLD), training())
    assert found[1].accepted == [] and found[1].errors == ["classification at the root: engine said no"]
    assert found[0].accepted[-1] == ("Logistics", "Catering") and not found[0].errors


async def test_per_node_asks_once_per_text_and_child():
    tree = training()
    proc = ScriptedProcessor(oracle(GOLD))
    found = await walker(proc, strategy="per_node").classify(list(GOLD), tree)
    assert found[0].accepted == [("Delivery",), ("Delivery", "Pace"), ("Logistics",), ("Logistics", "Catering")]
    assert found[1].accepted == [("Content",)] and found[2].accepted == []
    # Per text and node, one call asking about each child: the root's 3 for each of the 3 texts;
    # then Delivery's 2 and Logistics' 2 for text 0.
    assert sorted(len(c.prompts) for c in proc.calls) == [2, 2, 3, 3, 3]
    for call in proc.calls:
        assert set(call.schema["required"]) == {"is_relevant", "confidence", "reasoning", "excerpt"}
        parent = topic_path(call.prompts[0])[:-1]
        assert sorted(topic_path(p) for p in call.prompts) == sorted(parent + (c.name,)
                                                                     for c in tree.node(parent).children)
        assert len({p.comment for p in call.prompts}) == 1, "one text per call"
        for prompt in call.prompts:
            path = topic_path(prompt)
            node = tree.node(path)
            assert f"- {node.name}" in prompt.instructions
            siblings = [c for c in tree.node(path[:-1]).children if c.name != node.name]
            assert not any(f"- {s.name}" in prompt.instructions for s in siblings)


@pytest.mark.parametrize(
    "settings, answer, accepted",
    [
        ({"min_confidence": 3}, {"confidence": 2, "excerpt": "rushed"}, False),
        ({"min_confidence": 3}, {"confidence": 3, "excerpt": ""}, True),
        ({"require_excerpt": True}, {"confidence": 5, "excerpt": ""}, False),
        ({"require_excerpt": True}, {"confidence": 5, "excerpt": "not in the text"}, False),
        ({"require_excerpt": True}, {"confidence": 5, "excerpt": "Trainer RUSHED"}, True),
    ],
)
async def test_per_node_policies(settings, answer, accepted):
    def reply(prompt, schema):
        return {"is_relevant": True, "reasoning": "r", **answer}

    found = await walker(ScriptedProcessor(reply), strategy="per_node", **settings).classify(
        ["The trainer rushed"], training()
    )
    assert (("Content",) in found[0].accepted) == accepted
    if accepted:
        assert found[0].node_results[("Content",)] == {"is_relevant": True, "reasoning": "r", **answer,
                                                       "probability": None, "source": "llm"}


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'greedy'"):
        walker(ScriptedProcessor(oracle({})), strategy="greedy")




@pytest.mark.parametrize(("min_probability", "max_paths", "expected"), [
    (0.3, 3, [("Delivery",), ("Delivery", "Pace"), ("Logistics",), ("Logistics", "Catering"), ("Logistics", "Venue")]),
    (0.4, 3, [("Delivery",), ("Delivery", "Pace")]),
    (0.3, 1, [("Delivery",), ("Delivery", "Pace")]),
    (0.95, 3, []),
])  # fmt: skip
async def test_score_accepts_the_children_whose_probability_reaches_the_threshold(min_probability, max_paths, expected):
    proc = ScriptedProcessor(scored)
    [result] = await walker(proc, strategy="score", min_probability=min_probability, max_paths=max_paths).classify(
        ["The trainer rushed and the lunch was cold"], training())
    assert result.accepted == expected and not result.errors
    for call in proc.calls:
        assert call.max_tokens == 1 and call.schema["options"][-1] in call.prompts[0].instructions
        assert f"{call.schema['options'][-1]}. {NONE_OF_THESE}" in call.prompts[0].instructions


async def test_score_node_results_carry_probability_and_the_confidence_made_from_it():
    [result] = await walker(ScriptedProcessor(scored), strategy="score", min_probability=0.3).classify(
        ["The trainer rushed and the lunch was cold"], training())
    assert result.node_results[("Delivery",)] == {
        "is_relevant": True, "confidence": 4, "probability": 0.6, "reasoning": "", "excerpt": "", "source": "llm"}
    assert result.node_results[("Delivery", "Pace")]["confidence"] == 5
    assert result.node_results[("Logistics", "Venue")]["confidence"] == 2


def written(*pieces: tuple[str, float]) -> ItemResult:
    """A select-form answer as a backend returns it: the value and its tokens with their
    log-probabilities, from (text, probability) pieces."""
    return ItemResult(value=json.loads("".join(t for t, _ in pieces)), tokens=tuple((t, math.log(p)) for t, p in pieces))


def flat_named(prompt, schema):
    """Pace written with p 0.5, then Catering with 0.6 x 0.5 = 0.3."""
    stems = schema["properties"]["topics"]["items"]["enum"]
    assert stems == ["Delivery>Pace", "Delivery>Clarity", "Logistics>Catering", "Logistics>Venue", "Content",
                     NONE_OF_THESE], "every complete stem, by its path, and none of these"
    assert all(f"- {stem}" in prompt.instructions for stem in stems[:-1])
    return written(('{"topics":["', 1.0), ("Delivery>Pace", 0.5), ('","', 0.6), ("Logistics>Catering", 0.5),
                   ('"]}', 1.0))


@pytest.mark.parametrize(("min_probability", "max_paths", "expected"), [
    (0.25, 3, [("Delivery",), ("Delivery", "Pace"), ("Logistics",), ("Logistics", "Catering")]),
    (0.4, 3, [("Delivery",), ("Delivery", "Pace")]),
    (0.25, 1, [("Delivery",), ("Delivery", "Pace")]),  # one child per node: Delivery outranks Logistics
    (0.6, 3, []),
])  # fmt: skip
async def test_flat_asks_once_per_text_and_decides_top_down(min_probability, max_paths, expected):
    proc = ScriptedProcessor(flat_named)
    found = await walker(proc, strategy="flat", min_probability=min_probability, max_paths=max_paths).classify(
        ["The trainer rushed and the lunch was cold", "Great content"], training())
    assert found[0].accepted == expected and not found[0].errors
    assert [len(c.prompts) for c in proc.calls] == [1, 1], "one question per text"
    if expected:
        assert found[0].node_results[("Delivery",)]["probability"] == pytest.approx(0.5)


async def test_flat_without_token_probabilities_keeps_the_first_picks():
    def answer(prompt, schema):
        return {"topics": ["Logistics>Venue", NONE_OF_THESE, "Content", "Delivery>Pace"]}

    [result] = await walker(ScriptedProcessor(answer), strategy="flat", max_paths=2).classify(["x"], training())
    assert result.accepted == [("Logistics",), ("Logistics", "Venue"), ("Content",)]
    assert {node["probability"] for node in result.node_results.values()} == {None}


async def test_a_calibration_decides_and_is_what_node_results_report():
    # Level 1 halves every probability; level 2 is left as the model gave it.
    calibration = Calibration({1: ProbabilityMap((0.0, 1.0), (0.0, 0.5))})
    [result] = await walker(ScriptedProcessor(scored), strategy="score", min_probability=0.3,
                            calibration=calibration).classify(["The trainer rushed and the lunch was cold"], training())
    assert result.accepted == [("Delivery",), ("Delivery", "Pace")]  # Logistics: 0.35 -> 0.175
    assert result.node_results[("Delivery",)]["probability"] == 0.3
    assert result.node_results[("Delivery", "Pace")]["probability"] == 0.9


def select_with_tokens(prompt, schema):
    """A select answer with the tokens a backend returns: Delivery written with p 0.8, the
    choice to add Logistics 0.5 and its name 0.6 (so 0.3); one level down, Pace with 0.9."""
    path = topic_path(prompt)
    if path == ():
        pieces = [('{"topics":["', 1.0), ("Delivery", 0.8), ('","', 0.5), ("Logistics", 0.6), ('"]}', 1.0)]
    elif path == ("Delivery",):
        pieces = [('{"topics":["', 1.0), ("Pace", 0.9), ('"]}', 1.0)]
    else:
        pieces = [('{"topics":["', 1.0), (NONE_OF_THESE, 0.7), ('"]}', 1.0)]
    return written(*pieces)


@pytest.mark.parametrize(("min_probability", "expected"), [
    (0.25, [("Delivery",), ("Delivery", "Pace"), ("Logistics",)]),
    (0.35, [("Delivery",), ("Delivery", "Pace")]),
])
async def test_select_reads_each_picks_probability_and_applies_the_threshold(min_probability, expected):
    [result] = await walker(ScriptedProcessor(select_with_tokens), min_probability=min_probability).classify(
        ["The trainer rushed"], training())
    assert result.accepted == expected
    assert result.node_results[("Delivery",)] == {
        "is_relevant": True, "confidence": 5, "probability": 0.8, "reasoning": "", "excerpt": "", "source": "llm"}
    assert result.node_results[("Delivery", "Pace")]["probability"] == 0.9


def per_node_with_tokens(prompt, schema):
    return written(('{"is_relevant":', 1.0), ("true", 0.7), (',"confidence":4,"reasoning":"r","excerpt":""}', 1.0))


async def test_per_node_reports_the_probability_of_its_yes():
    [result] = await walker(ScriptedProcessor(per_node_with_tokens), strategy="per_node").classify(["x"], training())
    assert result.node_results[("Content",)] == {
        "is_relevant": True, "confidence": 4, "reasoning": "r", "excerpt": "", "probability": 0.7, "source": "llm"}


@pytest.mark.parametrize(("strategy", "answer"), [
    ("select", select_with_tokens), ("select", oracle(GOLD)), ("per_node", per_node_with_tokens),
    ("score", scored), ("flat", flat_named),
])
async def test_node_results_have_the_same_keys_under_every_strategy(strategy, answer):
    [result] = await walker(ScriptedProcessor(answer), strategy=strategy, min_probability=0.1).classify(
        ["The trainer rushed and the lunch was cold"], training())
    assert result.node_results, "something was accepted"
    for node in result.node_results.values():
        assert set(node) == {"is_relevant", "confidence", "probability", "reasoning", "excerpt", "source"}
        assert node["is_relevant"] is True and node["confidence"] in range(1, 6)
        assert node["probability"] is None or 0.0 <= node["probability"] <= 1.0


async def test_one_texts_walk_goes_on_while_another_texts_answer_is_held_back():
    proc = HoldingProcessor(oracle(GOLD), held=lambda prompt, schema: prompt.comment == "Great content")
    walk = asyncio.create_task(walker(proc).classify(list(GOLD), training()))
    rushed = "The trainer rushed and the lunch was cold"
    await until(lambda: {topic_path(p) for p in proc.prompts if p.comment == rushed} == {(), ("Delivery",),
                                                                                       ("Logistics",)})
    assert not walk.done() and "Great content" not in {p.comment for p in proc.prompts}
    proc.release.set()
    found = await walk
    assert [r.accepted for r in found] == [
        [("Delivery",), ("Delivery", "Pace"), ("Logistics",), ("Logistics", "Catering")], [("Content",)], []]
