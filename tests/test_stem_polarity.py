"""Stem polarity's two forms over a scripted processor: all of a text's stems in one call
(the default), or one call per stem with a reasoning; probabilities read from the tokens."""
import json
import math

from classifier.llm.base import ItemResult
from classifier.prompts import STEM_POLARITY_TASK, STEMS_POLARITY_TASK
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings
from tests.scripted import ScriptedProcessor, oracle
from tests.test_service import GOLD, RUSHED, capability_answers, felt
from tests.trees import training

LUNCH = "The lunch was cold and the trainer rushed"  # the same two stems as RUSHED


def spelled_with(value: dict[str, str], word_probability: dict[str, float]) -> ItemResult:
    """An answer whose tokens give each polarity word its probability, format tokens 1."""
    pieces = [('{"', 0.0)]
    for k, (stem, polarity) in enumerate(value.items()):
        pieces += [(stem, 0.0), ('":"', 0.0), (polarity, math.log(word_probability[stem]))]
        pieces.append(('","' if k < len(value) - 1 else '"}', 0.0))
    assert "".join(t for t, _ in pieces) == json.dumps(value, separators=(",", ":"))
    return ItemResult(value=value, tokens=tuple(pieces))


def polarity_with_tokens(prompt, schema):
    if prompt.instructions.startswith(STEMS_POLARITY_TASK):
        value = {stem: felt(stem) for stem in schema["properties"]}
        return spelled_with(value, {"Delivery>Pace": 0.95, "Logistics>Catering": 0.55, "Content": 0.25})
    return capability_answers(prompt, schema)


async def classify(answer, texts, **settings):
    processor = ScriptedProcessor(oracle({**GOLD, LUNCH: GOLD[RUSHED]}, answer))
    service = ClassificationService(processor, {"topics": training()}, ClassifierSettings(**settings))
    return (await service.classify(texts, ["stem_polarity"]))["results"], processor


async def test_one_call_per_text_judges_all_its_stems_with_the_models_probability():
    results, processor = await classify(polarity_with_tokens, [RUSHED, "Great content", LUNCH])
    polarity_prompts = [p for p in processor.prompts if p.instructions.startswith(STEMS_POLARITY_TASK)]
    assert len(polarity_prompts) == 3, "one prompt per text, whatever its number of stems"
    both = [c for c in processor.calls if "Delivery>Pace" in c.schema.get("properties", {})]
    assert all(c.schema["required"] == ["Delivery>Pace", "Logistics>Catering"] for c in both)
    assert sorted(p.comment for c in both for p in c.prompts) == sorted([RUSHED, LUNCH])
    assert "Topic: Delivery>Pace" in both[0].prompts[0].instructions
    assert "Topic: Logistics>Catering" in both[0].prompts[0].instructions
    assert results[0]["stem_polarity"] == {
        "Delivery>Pace": {"polarity": "Negative", "confidence": 5, "probability": 0.95, "reasoning": "", "excerpt": "",
                          "source": "llm"},
        "Logistics>Catering": {"polarity": "Negative", "confidence": 3, "probability": 0.55, "reasoning": "",
                               "excerpt": "", "source": "llm"},
    }
    assert results[2]["stem_polarity"] == results[0]["stem_polarity"]
    assert results[1]["stem_polarity"] == {"Content": {"polarity": "Positive", "confidence": 2, "probability": 0.25,
                                                       "reasoning": "", "excerpt": "", "source": "llm"}}


async def test_a_failed_answer_fails_that_text_alone_naming_its_stems():
    def answer(prompt, schema):
        if prompt.comment == RUSHED and prompt.instructions.startswith(STEMS_POLARITY_TASK):
            return "model output is not JSON"
        return polarity_with_tokens(prompt, schema)

    results, _ = await classify(answer, [RUSHED, LUNCH])
    assert results[0]["error"] == "stem_polarity (Delivery>Pace, Logistics>Catering): model output is not JSON"
    assert results[0]["stem_polarity"] == {}
    assert "error" not in results[1] and len(results[1]["stem_polarity"]) == 2


async def test_stem_reasoning_asks_per_stem_for_a_reasoning_and_an_excerpt():
    results, processor = await classify(capability_answers, [RUSHED], stem_reasoning=True)
    per_stem = [p for p in processor.prompts if p.instructions.startswith(STEM_POLARITY_TASK)]
    assert len(per_stem) == 2
    assert results[0]["stem_polarity"]["Delivery>Pace"] == {
        "polarity": "Negative", "confidence": 4, "probability": None, "reasoning": "about Delivery>Pace",
        "excerpt": "delivery>pace", "source": "llm"}
