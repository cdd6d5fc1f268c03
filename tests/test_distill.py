"""The distilled route's parts: the sample's draw (size, coverage, floor per node, seed), silver
labels read from results and kept apart from gold, who answered a comment, and the phases
over a scripted LLM with the real embedder (the real-engine run is in test_batch_distilled)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from classifier.distill.route import ANSWERING, TEACHING, TRAINING, answered_by, distill, shares
from classifier.distill.sample import covering, near, sample_size
from classifier.distill.silver import SILVER, read_silver
from classifier.gold import OPERATOR
from classifier.gold.embedder import Embedder
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings, DistillSettings
from classifier.taxonomy import taxonomy_from_dict

from .scripted import ScriptedProcessor, oracle

TREE = taxonomy_from_dict({"name": "venue", "children": [
    {"name": "Food", "description": "dishes, taste, portions", "children": [{"name": "Quality"}, {"name": "Price"}]},
    {"name": "Service", "description": "waiters, staff, waiting"},
    {"name": "Parking", "description": "parking lot, cars, spaces"},
]}, name="venue")  # fmt: skip


def test_the_sample_size_is_a_number_a_share_or_a_twentieth_of_at_least_200() -> None:
    assert sample_size(10_000, 300) == 300
    assert sample_size(10_000, 0.1) == 1000
    assert sample_size(10_000) == 500 and sample_size(2_000) == 200 and sample_size(150) == 150
    assert sample_size(50, 80) == 50


def two_regions(big: int = 950, small: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centre_a, centre_b = np.eye(16)[0], np.eye(16)[1]
    vectors = np.vstack([centre_a + 0.05 * rng.normal(size=(big, 16)), centre_b + 0.05 * rng.normal(size=(small, 16))])
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_the_draw_covers_the_file_in_proportion_and_is_the_same_for_a_seed() -> None:
    vectors = two_regions()
    drawn = covering(vectors, 100, seed=42)
    assert len(drawn) == len(set(drawn)) == 100 and drawn == sorted(drawn)
    assert 2 <= sum(k >= 950 for k in drawn) <= 10, "the small region is seen, in proportion"
    assert drawn == covering(vectors, 100, seed=42) and drawn != covering(vectors, 100, seed=7)
    assert drawn[-1] > 100, "not the first rows"
    assert covering(vectors[:30], 100, seed=42) == list(range(30))


def test_the_floor_draws_the_unsampled_comments_nearest_a_short_node_within_the_limit() -> None:
    vectors = two_regions()
    query = np.eye(16, dtype=np.float32)[1]
    picked = near(vectors, {"rare": (query, 5)}, taken={950, 951}, limit=10)
    assert len(picked) == 5 and all(k > 951 for k in picked)
    both = near(vectors, {"common": (np.eye(16, dtype=np.float32)[0], 3), "rare": (query, 8)}, set(), limit=10)
    assert len(both) == 10 and sum(k >= 950 for k in both) == 8, "the node lacking most is served first"


def result(text: str, paths: list[str], *, polarity: dict | None = None, recommendation: float | None = None,
           probability: float = 0.9) -> dict:
    body = {"text": text, "classification_result": {
        "classification_paths": paths, "node_results": {p.split(">")[-1]: {"probability": probability} for p in paths}}}
    if polarity is not None:
        body["stem_polarity"] = {stem: {"polarity": value} for stem, value in polarity.items()}
    if recommendation is not None:
        body["recommendations"] = {"has_recommendations": recommendation >= 0.5, "probability": recommendation,
                                   "recommendations": []}
    return body


def test_silver_labels_are_the_deepest_paths_the_llm_accepted_and_failed_rows_teach_nothing() -> None:
    results = [
        result("tasty soup", ["Cafe>Food", "Cafe>Food>Quality"], polarity={"Food>Quality": "Positive"},
               recommendation=0.1),
        {"text": "broken", "error": "the engine failed"},
        result("slow staff", ["Cafe>Service"], polarity={"Service": "Negative"}, recommendation=0.55, probability=0.5),
        result("nothing", [], polarity={}, recommendation=0.95),
    ]
    vectors = np.eye(4, dtype=np.float32)
    silver = read_silver(results, vectors, TREE, "Cafe", ["classification", "stem_polarity", "recommendations"])
    assert silver.texts == ["tasty soup", "slow staff", "nothing"]
    assert silver.vectors.tolist() == vectors[[0, 2, 3]].tolist()
    assert silver.stems == [frozenset({("Food", "Quality")}), frozenset({("Service",)}), frozenset()]
    assert silver.polarity[1] == {("Service",): "Negative"}
    assert silver.flags == {"recommendations": [False, True, True]}
    sure = read_silver(results, vectors, TREE, "Cafe", ["classification", "recommendations"], sure_only=True,
                       thresholds={"recommendations": 0.5})
    assert sure.stems == [frozenset({("Food", "Quality")}), None, frozenset()], "a topic accepted at .5 teaches nothing"
    assert sure.flags == {"recommendations": [False, None, True]}
    assert sure.polarity is None


def test_who_answered_a_comment() -> None:
    learned = {"text": "a", "classification_result": {"classification_paths": [], "node_results": {},
                                                      "source": "learned"},
               "stem_polarity": {"Food": {"polarity": "Positive", "source": "learned"}},
               "alerts": {"has_alerts": False, "probability": 0.01, "alerts": [], "source": "learned"}}
    assert answered_by(learned) == "learned"
    assert answered_by({**learned, "classification_result": {**learned["classification_result"], "source": SILVER}}) \
        == "learned"
    assert answered_by({**learned, "stem_polarity": {"Food": {"polarity": "Positive", "source": "llm"}}}) == "llm"
    assert answered_by({**learned, "alerts": {**learned["alerts"], "source": "llm"}}) == "llm"
    assert answered_by({**learned, "alerts": {**learned["alerts"], "has_alerts": True}}) == "llm", "details by the LLM"
    assert answered_by({"text": "", "skipped": "empty text"}) == "skipped"
    assert answered_by({"text": "x", "error": "no"}) == "failed"
    assert answered_by({"text": "x", "classification_result": {"classification_paths": [], "node_results": {}}}) == "llm"


FOODS = ["soup", "pasta", "steak", "salad", "curry", "pizza", "bread", "fish", "cake", "rice"]
GOOD = ["delicious", "wonderful", "tasty", "superb", "lovely", "perfect"]
BAD = ["awful", "terrible", "bland", "disgusting", "cold", "dreadful"]


def comments(count: int) -> list[str]:
    """Food quality praise or blame, service complaints, and parking remarks, in a mixed order."""
    rng = np.random.default_rng(3)
    made = []
    for k in range(count):
        kind = k % 3
        if kind == 0:
            made.append(f"The {rng.choice(FOODS)} was {rng.choice(GOOD + BAD)} tonight ({k}).")
        elif kind == 1:
            made.append(f"Our waiter was rude and we waited {k % 40 + 5} minutes for a menu.")
        else:
            made.append(f"There was no parking space left, we drove around for {k % 30 + 3} minutes.")
    return made


def topics_of(text: str) -> set[tuple[str, ...]]:
    if "waiter" in text:
        return {("Service",)}
    return {("Parking",)} if "parking" in text else {("Food", "Quality")}


def polarity(prompt, schema):
    """The scripted teacher's polarity: by the comment's words."""
    bad = any(word in prompt.comment for word in BAD + ["rude", "no parking"])
    return {name: "Negative" if bad else "Positive" for name in schema["properties"]}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


async def run_distilled(texts: list[str], embedder: Embedder, settings: DistillSettings):
    processor = ScriptedProcessor(oracle({text: topics_of(text) for text in texts}, polarity))
    service = ClassificationService(processor, {TREE.name: TREE}, ClassifierSettings(min_probability=0.0))
    rows = dict(enumerate(texts, start=1))
    results: dict[int, dict] = {}
    phases: list[str] = []
    asked: dict[str, int] = {}

    async def answer(chosen, phase, route):
        before = len([p for call in processor.calls for p in call.prompts])
        body = await service.classify([rows[r] for r in chosen], ["classification", "stem_polarity"], route=route)
        results.update(zip(chosen, body["results"]))
        asked[phase] = asked.get(phase, 0) + len([p for call in processor.calls for p in call.prompts]) - before

    report = await distill(service, embedder, TREE, rows, results, ["classification", "stem_polarity"], settings,
                           answer, on_phase=lambda phase, detail: phases.append(phase))
    return service, report, results, phases, asked


async def test_the_sample_teaches_and_the_learned_models_answer_most_of_the_rest(embedder: Embedder) -> None:
    texts = comments(600)
    service, report, results, phases, asked = await run_distilled(texts, embedder, DistillSettings(sample=90))
    assert phases[0] == TEACHING and phases[-2:] == [TRAINING, ANSWERING]
    assert len(results) == 600 and report.sampled >= 90 and report.silver == report.sampled
    assert 0 < report.floor <= 45, "Food>Price, never answered, had comments drawn near it (at most half the sample)"
    assert report.escalated == math.ceil(0.15 * (600 - report.sampled)), "the share doubted most"
    assert report.models == {"topics": "learned", "polarity": "learned"}
    knowledge = service.knowledge[(TREE.name, OPERATOR)]
    assert knowledge.source == SILVER and len(knowledge.texts) == report.silver, "silver lives in the run only"
    counted = shares(list(results.values()))
    assert counted["learned"] >= 300, counted
    assert asked[ANSWERING] < asked[TEACHING] * (600 - report.sampled) / report.sampled / 3, asked
    parked = [r for r in results.values() if "parking space" in r["text"]]
    assert all(r["classification_result"]["classification_paths"] == ["venue>Parking"] for r in parked)
    learned = [r for r in results.values() if answered_by(r) == "learned" and r["stem_polarity"]]
    assert learned and all(v["source"] == "learned" for r in learned for v in r["stem_polarity"].values())
    assert all(v["polarity"] == "Negative" for r in parked for v in r["stem_polarity"].values())


async def test_a_file_too_small_to_learn_from_is_answered_by_the_llm_alone(embedder: Embedder) -> None:
    service, report, results, phases, asked = await run_distilled(comments(40), embedder,
                                                                  DistillSettings(min_comments=50))
    assert phases == [ANSWERING] and "too few" in report.llm_only and report.sampled == 0
    assert len(results) == 40 and shares(list(results.values())) == {"llm": 40}
    assert not service.knowledge


def test_a_flag_too_rare_to_learn_is_surely_not_only_far_from_what_the_llm_found_suspicious() -> None:
    from classifier.distill.teacher import surely_not

    vectors = two_regions(big=300, small=20)  # the LLM gave the small region .3-.7, around its threshold .5
    rng = np.random.default_rng(0)
    probabilities = [float(rng.uniform(0, 0.05)) for _ in range(300)] + [float(rng.uniform(0.3, 0.7)) for _ in range(20)]
    model = surely_not(vectors, probabilities, threshold=0.5, source="learned")
    assert model is not None and model.model is None
    verdicts = model.verdicts("alerts", ["x"] * 320, vectors, "learned")
    assert sum(v is not None and not v.passed for v in verdicts[:300]) >= 290, "the ordinary ones: surely not"
    assert all(v is None for v in verdicts[300:]), "those like the suspicious ones: the LLM's"
    assert model.verdicts("alerts", ["x"] * 320, vectors, "llm") == [None] * 320
    assert surely_not(vectors[:20], probabilities[:20], threshold=0.5, source="learned") is None, "too few taught"
