"""The service and its capabilities, end to end over a scripted processor: exact wire JSON."""
import asyncio

import pytest

from classifier.capabilities import UnknownCapability, resolve
from classifier.llm.fairness import Requester, requester
from classifier.prompts import ALERTS_TASK, RECOMMENDATIONS_TASK, STEM_POLARITY_TASK, STEMS_POLARITY_TASK, TRENDS_TASK
from classifier.service import SMALL_REQUEST, ClassificationService, UnknownTaxonomy
from classifier.settings import ClassifierSettings
from tests.scripted import HoldingProcessor, ScriptedProcessor, oracle, until
from tests.trees import training

RUSHED = "The trainer rushed and the lunch was cold"
GOLD = {RUSHED: [("Delivery", "Pace"), ("Logistics", "Catering")], "Great content": [("Content",)]}

RECOMMENDATION = {
    "excerpt": "rushed", "reasoning": "asks for time", "paraphrased_recommendation": "Slow down",
    "qualifier": "modify_or_improve",
}
ALERT = {"excerpt": "cold", "reasoning": "food safety", "alert_type": "safety_concern", "severity": "low"}
TREND = {"excerpt": "again", "reasoning": "repeats", "subject": "lunch", "direction": "deteriorating",
         "valence": "negative", "confidence": 4}


def felt(stem: str) -> str:
    return "Negative" if stem != "Content" else "Positive"


# Per capability's decision (known by one of its words), the probability of its words:
# alerts' is below every threshold.
DECIDED = {"suggestion": {"suggestion": 0.9, "complaint": 0.1}, "harassment": {"harassment": 0.0, "praise": 1.0},
           "decline": {"change": 0.7, "opinion": 0.3}}


def capability_answers(prompt, schema):
    """Decisions, details, and stem answers, recognisable per prompt."""
    if "options" in schema:  # a one-word decision, whole comment or one stem
        return next(found for word, found in DECIDED.items() if word in schema["options"])
    props = schema["properties"]
    if prompt.instructions.startswith(RECOMMENDATIONS_TASK):
        return {"recommendations": [RECOMMENDATION]}
    if prompt.instructions.startswith(ALERTS_TASK):
        raise AssertionError("details asked of a comment whose alerts decision said no")
    if prompt.instructions.startswith(TRENDS_TASK):
        return {"trends": [TREND]}
    if prompt.instructions.startswith(STEM_POLARITY_TASK):  # one stem, with a reasoning
        stem = prompt.instructions.split("Topic: ", 1)[1].split("\n", 1)[0]
        return {"polarity": felt(stem), "confidence": 4, "reasoning": f"about {stem}", "excerpt": stem.lower()}
    if prompt.instructions.startswith(STEMS_POLARITY_TASK):  # all of a text's stems at once
        return {stem: felt(stem) for stem in props}
    if "recommendation_type" in str(props):
        return {"recommendations": [
            {"recommendation_type": "do_less", "excerpt": "e", "reasoning": "r", "paraphrased_recommendation": "p"}]}
    if "trends" in props:
        return {"trends": [TREND]}
    raise AssertionError(f"unexpected prompt {prompt.instructions[:80]}")


def decided(item: dict, probability: float) -> dict:
    return {**item, "probability": probability}


def service(answer=None, **settings) -> tuple[ClassificationService, ScriptedProcessor]:
    proc = ScriptedProcessor(answer or oracle(GOLD, capability_answers))
    return ClassificationService(proc, {"topics": training()}, ClassifierSettings(**settings)), proc


async def test_every_capability_has_the_exact_wire_shape():
    svc, _ = service()
    body = await svc.classify([RUSHED], ["classification", "recommendations", "alerts", "trend", "stem_polarity",
                                         "stem_recommendations", "stem_trend"])
    assert body["batch_info"] == {"text_count": 1, "capabilities_executed": [
        "classification", "recommendations", "alerts", "trend", "stem_polarity", "stem_recommendations", "stem_trend"]}
    assert body["config_used"] == "topics" and isinstance(body["processing_time"], float)
    stem_rec = {"has_recommendations": True, "probability": 0.9, "recommendations": [decided(
        {"recommendation_type": "do_less", "excerpt": "e", "reasoning": "r", "paraphrased_recommendation": "p"}, 0.9)],
        "source": "llm"}
    assert body["results"] == [{
        "text": RUSHED,
        "classification_result": {
            "classification_paths": ["Training feedback>Delivery", "Training feedback>Delivery>Pace",
                                     "Training feedback>Logistics", "Training feedback>Logistics>Catering"],
            "node_results": {name: {"is_relevant": True, "confidence": 3, "probability": None, "reasoning": "scripted",
                                    "excerpt": "", "source": "llm"} for name in ("Delivery", "Pace", "Logistics", "Catering")},
        },
        "recommendations": {"has_recommendations": True, "probability": 0.9,
                            "recommendations": [decided(RECOMMENDATION, 0.9)], "source": "llm"},
        "alerts": {"has_alerts": False, "probability": 0.0, "alerts": [], "source": "llm"},
        "trends": {"has_trends": True, "probability": 0.7, "trends": [decided(TREND, 0.7)], "source": "llm"},
        "stem_polarity": {  # one call judged both stems; a scripted answer has no tokens to read
            stem: {"polarity": "Negative", "confidence": 3, "probability": None, "reasoning": "", "excerpt": "",
                   "source": "llm"}
            for stem in ("Delivery>Pace", "Logistics>Catering")
        },
        "stem_recommendations": {"Delivery>Pace": stem_rec, "Logistics>Catering": stem_rec},
        "stem_trends": {"Delivery>Pace": [decided(TREND, 0.7)], "Logistics>Catering": [decided(TREND, 0.7)]},
    }]


async def test_stem_capabilities_pull_in_classification_and_run_after_it():
    assert resolve(["stem_polarity"]) == ["classification", "stem_polarity"]
    assert resolve(["stem_trend", "alerts", "classification"]) == ["classification", "alerts", "stem_trend"]
    svc, proc = service()
    body = await svc.classify([RUSHED, "Great content"], ["stem_polarity"], project_name="Acme 2026")
    assert body["batch_info"]["capabilities_executed"] == ["classification", "stem_polarity"]
    for k, call in enumerate(proc.calls):  # a text's stems are asked about once its walk is done
        if "topics" not in call.schema["properties"]:
            text = call.prompts[0].comment
            assert not any(c.prompts[0].comment == text for c in proc.calls[k + 1:]), "a walk after its stems"
    stem_calls = [(c.prompts[0].comment, list(c.schema["properties"])) for c in proc.calls
                  if "topics" not in c.schema["properties"]]
    assert sorted(stem_calls) == [("Great content", ["Content"]),
                                  (RUSHED, ["Delivery>Pace", "Logistics>Catering"])], "one call per text"
    assert [r["classification_result"]["classification_paths"] for r in body["results"]] == [
        ["Acme 2026>Delivery", "Acme 2026>Delivery>Pace", "Acme 2026>Logistics", "Acme 2026>Logistics>Catering"],
        ["Acme 2026>Content"],
    ]
    assert list(body["results"][1]["stem_polarity"]) == ["Content"]


async def test_stems_are_only_paths_that_end_at_a_leaf():
    def answer(prompt, schema):
        if "topics" in schema["properties"]:  # stop below Delivery: no complete stem
            return {"topics": ["Delivery"] if "Topic path: Training feedback\n" in prompt.instructions
                    else ["none of these"], "reason": ""}
        raise AssertionError("no stem should be asked about")

    svc, _ = service(answer)
    body = await svc.classify(["x"], ["stem_polarity"])
    assert body["results"][0]["stem_polarity"] == {}
    assert body["results"][0]["classification_result"]["classification_paths"] == ["Training feedback>Delivery"]


async def test_one_failed_text_keeps_the_others_and_its_own_other_results():
    base = oracle(GOLD, capability_answers)

    def answer(prompt, schema):
        if prompt.comment == "Great content" and "topics" not in schema["properties"]:
            return "model output is not JSON"
        return base(prompt, schema)

    svc, _ = service(answer)
    body = await svc.classify(["Great content", RUSHED, "Great content"], ["stem_polarity"])
    first, second, third = body["results"]
    assert first["error"] == "stem_polarity (Content): model output is not JSON"
    assert first["classification_result"]["classification_paths"] == ["Training feedback>Content"]
    assert first["stem_polarity"] == {} and first == third
    assert "error" not in second and set(second["stem_polarity"]) == {"Delivery>Pace", "Logistics>Catering"}


async def test_a_capability_that_crashes_as_a_whole_becomes_per_item_errors():
    base = oracle(GOLD, capability_answers)

    def answer(prompt, schema):
        if "harassment" in schema.get("options", ()):
            raise ConnectionError("backend went away")
        return base(prompt, schema)

    svc, _ = service(answer)
    body = await svc.classify([RUSHED, "Great content"], ["alerts", "classification"])
    for result in body["results"]:
        assert result["error"] == "alerts: failed on the server's side; its log says why", "no internals"
        assert "alerts" not in result and result["classification_result"]["classification_paths"]


async def test_default_capability_and_bad_names():
    svc, _ = service()
    body = await svc.classify(["Great content"])
    assert body["batch_info"]["capabilities_executed"] == ["classification"]
    assert set(body["results"][0]) == {"text", "classification_result"}
    with pytest.raises(UnknownCapability, match="unknown capability 'sentiment'; available: classification, "):
        await svc.classify(["x"], ["sentiment"])
    with pytest.raises(UnknownTaxonomy, match="unknown taxonomy 'other'; loaded: topics"):
        await svc.classify(["x"], taxonomy="other")


async def test_node_results_keys_stay_unique_when_names_repeat():
    from classifier.taxonomy import taxonomy_from_dict

    tree = taxonomy_from_dict({"name": "R", "children": [
        {"name": "Food", "children": [{"name": "General"}, {"name": "Prices"}]},
        {"name": "Service", "children": [{"name": "General"}]}]})
    proc = ScriptedProcessor(oracle({"t": [("Food", "General"), ("Service", "General")]}))
    svc = ClassificationService(proc, {"r": tree}, ClassifierSettings())
    body = await svc.classify(["t"])
    assert list(body["results"][0]["classification_result"]["node_results"]) == [
        "Food", "Food>General", "Service", "Service>General"]


async def test_one_answer_the_output_model_refuses_fails_that_item_alone():
    base = oracle(GOLD, capability_answers)

    def answer(prompt, schema):
        if "harassment" in schema.get("options", ()):  # every text passes the alerts decision
            return {"harassment": 0.9, "praise": 0.1}
        if prompt.instructions.startswith(ALERTS_TASK):
            return {"alerts": [{**ALERT, "severity": "apocalyptic"} if prompt.comment == "poison" else ALERT]}
        value = base(prompt, schema)
        if prompt.comment == "poison" and "polarity" in schema.get("properties", {}):
            return {**value, "polarity": "Furious"}  # what a server ignoring the schema might send
        return value

    gold = {**GOLD, "poison": [("Content",)]}
    svc, _ = service(oracle(gold, answer), stem_reasoning=True)  # per stem, checked by its output model
    texts = [RUSHED, "poison", "Great content", RUSHED]
    body = await svc.classify(texts, ["alerts", "stem_polarity"])
    good, bad, content, again = body["results"]
    assert "stem_polarity (Content): answer does not fit StemPolarity (polarity:" in bad["error"]
    assert "alerts (details): answer does not fit Alerts (alerts.0.severity:" in bad["error"]
    assert bad["classification_result"]["classification_paths"] == ["Training feedback>Content"]
    assert bad["stem_polarity"] == {} and "alerts" not in bad
    for result in (good, content, again):
        assert "error" not in result and result["alerts"]["alerts"] == [{**ALERT, "probability": 0.9}]
        assert result["stem_polarity"]


async def test_empty_texts_ask_nothing_and_come_back_skipped():
    svc, proc = service()
    body = await svc.classify(["", RUSHED, "  \n\t"], ["classification", "alerts", "trend", "stem_polarity"])
    empty, full, blank = body["results"]
    assert empty == {"text": "", "skipped": "empty text",
                     "classification_result": {"classification_paths": [], "node_results": {}},
                     "alerts": {"has_alerts": False, "alerts": []}, "trends": {"has_trends": False, "trends": []},
                     "stem_polarity": {}}
    assert blank["skipped"] == "empty text" and "skipped" not in full and full["stem_polarity"]
    assert all(p.comment == RUSHED for p in proc.prompts), "no prompt for an empty text"
    calls = len(proc.calls)
    body = await svc.classify([" "], ["classification"])
    assert body["results"][0]["skipped"] == "empty text" and len(proc.calls) == calls


async def test_capabilities_that_need_no_topics_start_while_the_walk_is_held_back():
    def walking(prompt, schema) -> bool:
        return "topics" in schema.get("properties", {})

    proc = HoldingProcessor(oracle(GOLD, capability_answers), held=walking)
    svc = ClassificationService(proc, {"topics": training()}, ClassifierSettings())
    body = asyncio.create_task(svc.classify([RUSHED], ["classification", "alerts", "recommendations",
                                                       "stem_polarity"]))
    await until(lambda: sum("options" in c.schema for c in proc.calls) == 2)  # both decisions asked
    assert not body.done() and not any("topics" in c.schema.get("properties", {}) for c in proc.calls)
    proc.release.set()
    result = (await body)["results"][0]
    assert result["classification_result"]["classification_paths"] and result["stem_polarity"]
    assert "error" not in result, result


async def test_a_keys_requests_take_turns_as_one_requester_and_only_one_of_them_is_small():
    asked_by: list[Requester] = []

    def held(prompt, schema) -> bool:
        asked_by.append(requester.get())  # who the held call is made for
        return True

    proc = HoldingProcessor(oracle(GOLD, capability_answers), held=held)
    svc = ClassificationService(proc, {"topics": training()}, ClassifierSettings())
    flood = [asyncio.create_task(svc.classify([f"comment {n}"], owner="key-a")) for n in range(6)]
    other = asyncio.create_task(svc.classify(["from b"], owner="key-b"))
    anonymous = [asyncio.create_task(svc.classify([f"anonymous {n}"])) for n in range(2)]
    await until(lambda: len(asked_by) == 9)
    proc.release.set()
    await asyncio.gather(*flood, other, *anonymous)
    names = [who.name for who in asked_by]
    # Key a: its first texts, up to a small request's worth, are waited for (small); the rest
    # sent beside them are one bulk requester, never a queue-jump each.
    assert names.count("key key-a (small)") == SMALL_REQUEST and names.count("key key-a") == 6 - SMALL_REQUEST
    assert [who.small for who in asked_by if who.name == "key key-a"] == [False] * (6 - SMALL_REQUEST)
    assert names.count("key key-b (small)") == 1  # another key keeps its own privilege
    # Without a key, each request is its own requester, as before.
    assert len({n for n in names if n.startswith("request ")}) == 2
    assert svc._in_flight == {}  # nothing left counted once answered
