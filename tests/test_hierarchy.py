import pytest

from classifier.hierarchy import HierarchicalClassifier
from classifier.prompts import NONE_OF_THESE
from classifier.settings import ClassifierSettings
from tests.scripted import ScriptedProcessor, oracle, topic_path
from tests.trees import training

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


async def test_select_walks_several_paths_and_stops_at_leaves_and_none():
    proc = ScriptedProcessor(oracle(GOLD))
    found = await walker(proc).classify(list(GOLD), training())
    assert found[0].accepted == [("Delivery",), ("Delivery", "Pace"), ("Logistics",), ("Logistics", "Catering")]
    assert found[1].accepted == [("Content",)]
    assert found[2].accepted == []
    # Level 1: 3 texts at the root (one call). Level 2: text 0 on Delivery and on Logistics.
    # Content is a leaf and "none" stops text 2: nothing more is asked.
    assert [len(c.prompts) for c in proc.calls] == [3, 1, 1]
    assert found[0].node_results[("Delivery", "Pace")] == {  # no token log-probabilities from this processor
        "is_relevant": True, "confidence": 3, "probability": None, "reasoning": "scripted", "excerpt": ""}


async def test_equal_texts_get_separate_results_in_input_order():
    texts = ["Great content", "The trainer rushed and the lunch was cold", "Great content"]
    proc = ScriptedProcessor(oracle(GOLD))
    found = await walker(proc).classify(texts, training())
    assert [r.accepted for r in found] == [
        [("Content",)],
        [("Delivery",), ("Delivery", "Pace"), ("Logistics",), ("Logistics", "Catering")],
        [("Content",)],
    ]
    assert len(proc.calls[0].prompts) == 3


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
    # Root: 3 children x 3 texts; then 2 children of Delivery and 2 of Logistics for text 0.
    assert sorted(len(c.prompts) for c in proc.calls) == [1, 1, 1, 1, 3, 3, 3]
    for call in proc.calls:
        assert set(call.schema["required"]) == {"is_relevant", "confidence", "reasoning", "excerpt"}
        path = topic_path(call.prompts[0])
        node = tree.node(path)
        for prompt in call.prompts:
            assert topic_path(prompt) == path
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
                                                       "probability": None}


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'greedy'"):
        walker(ScriptedProcessor(oracle({})), strategy="greedy")


# Probabilities the model gives each child, per node (by name), for the `score` walk.
SCORES = {
    (): {"Delivery": 0.6, "Logistics": 0.35, "Content": 0.04, NONE_OF_THESE: 0.01},
    ("Delivery",): {"Pace": 0.9, "Clarity": 0.05, NONE_OF_THESE: 0.05},
    ("Logistics",): {"Catering": 0.5, "Venue": 0.3, NONE_OF_THESE: 0.2},
}


def scored(prompt, schema):
    """Letter -> probability, read off the lettered options of a `score` prompt."""
    named = {}
    for line in prompt.instructions.splitlines():
        letter, dot, rest = line.partition(". ")
        if dot and len(letter) == 1:
            named[rest.split(":")[0]] = letter
    return {named[name]: p for name, p in SCORES[topic_path(prompt)].items()}


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
    [result] = await walker(ScriptedProcessor(scored), strategy="score").classify(
        ["The trainer rushed and the lunch was cold"], training())
    assert result.node_results[("Delivery",)] == {
        "is_relevant": True, "confidence": 4, "probability": 0.6, "reasoning": "", "excerpt": ""}
    assert result.node_results[("Delivery", "Pace")]["confidence"] == 5
    assert result.node_results[("Logistics", "Venue")]["confidence"] == 2
