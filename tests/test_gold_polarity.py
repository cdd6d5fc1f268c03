"""The polarity model learned from labels: trained where two polarities have enough examples,
sure only past its out-of-fold threshold, and read by stem polarity before any LLM call."""
from __future__ import annotations

import numpy as np

from classifier.capabilities.base import RunContext
from classifier.capabilities.stems import stem_polarity
from classifier.gold.embedder import Embedder
from classifier.gold.knowledge import learned_from
from classifier.gold.polarity import single_polarities, train_polarity
from classifier.hierarchy import TextClassification
from classifier.settings import ClassifierSettings
from classifier.taxonomy import taxonomy_from_dict

from .scripted import ScriptedProcessor


def feelings(count: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Unit vectors in two clear groups (Positive near one axis, Negative near another)."""
    rng = np.random.default_rng(seed)
    labels = ["Positive" if k % 2 else "Negative" for k in range(count)]
    vectors = np.array([np.eye(8)[0 if label == "Positive" else 1] for label in labels]) + 0.1 * rng.normal(size=(count, 8))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), labels


def test_two_polarities_learn_a_model_sure_of_clear_comments_only() -> None:
    clear, labels = feelings(100)
    rng = np.random.default_rng(1)  # and comments between the two, of either feeling at random
    middle = np.eye(8)[0] + np.eye(8)[1] + 0.1 * rng.normal(size=(60, 8))
    vectors = np.vstack([clear, middle / np.linalg.norm(middle, axis=1, keepdims=True)]).astype(np.float32)
    model = train_polarity(vectors, labels + [rng.choice(["Positive", "Negative"]) for _ in range(60)])
    assert model is not None and set(model.classes) == {"Positive", "Negative"} and 0.5 < model.sure < 1
    decided = model.decide(clear)
    assert [polarity for polarity, _, _ in decided] == labels and all(sure for _, _, sure in decided)
    between = (np.eye(8)[0] + np.eye(8)[1]).astype(np.float32)[None] / np.sqrt(2)
    assert not model.decide(between)[0][2]


def test_too_few_examples_or_one_polarity_learn_nothing() -> None:
    vectors, labels = feelings(60)
    assert train_polarity(vectors, ["Positive"] * 60) is None
    assert train_polarity(vectors[:6], labels[:6]) is None
    assert train_polarity(vectors, [None] * 60) is None


def test_only_comments_about_one_stem_teach_their_polarity() -> None:
    stems = [frozenset({("A",)}), frozenset({("A",), ("B",)}), frozenset({("B",)}), frozenset()]
    given = [{("A",): "Positive"}, {("A",): "Positive", ("B",): "Negative"}, {}, {}]
    assert single_polarities(stems, given) == ["Positive", None, None, None]


TREE = taxonomy_from_dict({"name": "t", "children": [{"name": "Food"}, {"name": "Service"}]}, name="t")


async def test_stem_polarity_answers_from_the_labels_where_sure_and_asks_the_llm_elsewhere() -> None:
    embedder = Embedder()
    dishes = ("soup", "pasta", "cake", "bread", "fish", "curry", "salad", "steak", "rice", "pie", "tart", "stew",
              "lamb", "duck", "risotto")  # 15 of each feeling: enough to be sure (`surely`) of clear ones
    texts = [f"The {dish} was absolutely delicious, I loved it." for dish in dishes] + \
        [f"The {dish} was disgusting and cold, I hated it." for dish in dishes]
    knowledge = learned_from(TREE, texts, [frozenset({("Food",)})] * len(texts), embedder.embed(texts), embedder, "v",
                             polarities=[{("Food",): "Positive"}] * 15 + [{("Food",): "Negative"}] * 15)
    assert knowledge.polarity is not None
    processor = ScriptedProcessor(lambda prompt, schema: {name: "Neutral" for name in schema["properties"]})
    comments = ["The pizza was absolutely delicious, I loved it.", "The noodles were disgusting and cold, I hated it.",
                "The waiter was fine, nothing special."]
    ctx = RunContext(texts=comments, prefixes=["t"] * 3, taxonomy=TREE, processor=processor,
                     settings=ClassifierSettings(route="cascade"), knowledge=[knowledge] * 3)
    ctx.classifications = {i: TextClassification(accepted=[("Food",) if i < 2 else ("Service",)]) for i in range(3)}
    outcomes = await stem_polarity.run(ctx, [0, 1, 2])
    assert outcomes[0].value["Food"]["polarity"] == "Positive" and outcomes[0].value["Food"]["source"] == "learned"
    assert outcomes[1].value["Food"]["polarity"] == "Negative" and outcomes[1].value["Food"]["source"] == "learned"
    learned = {comments[i] for i in range(3) if outcomes[i].value["Food" if i < 2 else "Service"]["source"] == "learned"}
    assert {p.comment for c in processor.calls for p in c.prompts} == set(comments) - learned, "the LLM asked the rest"
    processor.calls.clear()
    llm = RunContext(texts=comments, prefixes=["t"] * 3, taxonomy=TREE, processor=processor,
                     settings=ClassifierSettings(route="llm"), knowledge=[knowledge] * 3)
    llm.classifications = ctx.classifications
    asked = await stem_polarity.run(llm, [0, 1, 2])
    assert {v["source"] for o in asked.values() for v in o.value.values()} == {"llm"}, "route llm: labels decide nothing"
