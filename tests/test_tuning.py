"""Tuning the encoder on labels: the table it learns from, the choice against the frozen
encoder, a real tuning on a slice of the suggestion file, and who reads the tuned encoder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from classifier.eval.gold import load_suggestions
from classifier.gold import model_file, tuning
from classifier.gold.embedder import MODEL_FOLDER, TUNING_RECORD, Embedder, model_dir, tuned_dir
from classifier.gold.flag_labels import FlagLabel
from classifier.gold.tuning import TuningSettings, held_rows, tune, tuned_once, tuning_set

FOOD, SERVICE = ("Food", "Quality"), ("Service", "General")


def topic_labels(count: int) -> list[tuple[str, frozenset]]:
    return [(f"comment {k}", frozenset({FOOD} if k % 2 else {SERVICE})) for k in range(count)]


def test_the_table_has_a_column_per_node_reached_and_per_flag_and_one_row_per_text():
    flags = [FlagLabel(f"comment {k}", "recommendations", k < 4) for k in range(8)]
    flags += [FlagLabel("only flagged", "recommendations", True), FlagLabel("an alert", "alerts", True)]
    data = tuning_set({"restaurants": topic_labels(8)}, flags)
    # alerts has one example of one kind only: nothing to learn, so no column
    assert data.columns == ["restaurants:Food", "restaurants:Food>Quality", "restaurants:Service",
                            "restaurants:Service>General", "flag:recommendations"]
    # "comment k" labelled twice is one row; "an alert" is labelled for no column left, so no row
    assert len(data.texts) == 9 and data.texts[8] == "only flagged"
    row = data.texts.index("comment 1")
    assert data.targets[row].tolist() == [1, 1, 0, 0, 1] and data.known[row].all()
    only = data.texts.index("only flagged")
    assert data.known[only].tolist() == [False, False, False, False, True]  # its topics are not known
    assert [data.task(j) for j in range(5)] == ["restaurants"] * 4 + ["flag:recommendations"]
    assert data.digest == tuning_set({"restaurants": topic_labels(8)}, flags).digest
    assert data.digest != tuning_set({"restaurants": topic_labels(9)}, flags).digest


def test_the_held_back_rows_are_a_reproducible_share():
    first, again = held_rows(200, 0.2, 42), held_rows(200, 0.2, 42)
    assert first.sum() == 40 and (first == again).all() and not (first == held_rows(200, 0.2, 7)).all()


def test_too_few_labels_keep_the_frozen_encoder_and_remove_a_tuned_one(tmp_path):
    target = tmp_path / "learned" / "encoder"
    target.mkdir(parents=True)
    (target / TUNING_RECORD).write_text("{}")
    report = tune(tuning_set({"r": topic_labels(20)}, []), model_dir(), target)
    assert not report.kept and "too few to tune on" in report.reason and not target.exists()
    assert Embedder.tuned_or_packaged(target).identity == MODEL_FOLDER


def scores(frozen: float, tuned: float):  # noqa: ANN201 - stands for task_scores: the frozen encoder is scored first
    values = iter([frozen, tuned])
    return lambda data, vectors, held: {"flag:recommendations": next(values)}


@pytest.fixture(scope="module")
def suggestions(shared_data: Path) -> list[FlagLabel]:
    """150 real sentences of the suggestion file, a third of them suggestions."""
    examples = load_suggestions(shared_data / "semeval19_suggestions_train.csv")
    wanted = [e for e in examples if e.flags["recommendations"]][:50] + \
        [e for e in examples if not e.flags["recommendations"]][:100]
    return [FlagLabel(e.text, "recommendations", e.flags["recommendations"]) for e in wanted]


QUICK = TuningSettings(epochs=1.0, max_seconds=120.0, batch_size=16)


def test_a_real_tuning_is_kept_only_when_it_measures_better(tmp_path, suggestions, monkeypatch):
    data = tuning_set({}, suggestions)
    target = tmp_path / "learned" / "encoder"
    monkeypatch.setattr(tuning, "task_scores", scores(frozen=0.8, tuned=0.9))
    report = tune(data, model_dir(), target, QUICK)
    assert report.kept and report.steps > 0 and report.held == 30
    files = {p.name for p in target.rglob("*")}
    assert "model.safetensors" in files and TUNING_RECORD in files and "modules.json" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pkl", ".pickle"))]  # no pickle
    with safe_open(target / "model.safetensors", framework="np") as weights:
        assert weights.keys()
    embedder = Embedder.tuned_or_packaged(target)
    assert embedder.identity == f"tuned:{report.digest}"
    vectors = embedder.embed(["Please add a dark mode.", "The build passed."])
    frozen = Embedder().embed(["Please add a dark mode.", "The build passed."])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert not np.allclose(vectors, frozen, atol=1e-3)  # the tuning changed the encoder

    monkeypatch.setattr(tuning, "task_scores", scores(frozen=0.8, tuned=0.7))
    report = tune(data, model_dir(), target, QUICK)
    assert not report.kept and "the frozen encoder serves" in report.reason and not target.exists()


def test_the_real_measure_decides_and_the_same_labels_are_not_tuned_twice(tmp_path, suggestions, monkeypatch):
    data = tuning_set({}, suggestions)
    target = tuned_dir(tmp_path)
    record = tuned_once(data, model_dir(), target, QUICK)
    assert set(record["frozen"]) == set(record["tuned"]) == {"flag:recommendations"}
    assert record["kept"] == (record["tuned"]["flag:recommendations"] > record["frozen"]["flag:recommendations"])
    assert (target / TUNING_RECORD).exists() == record["kept"]
    assert (Embedder.for_data(tmp_path).identity == f"tuned:{record['digest']}") == record["kept"]

    def untouchable(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("tuned again on the same labels")

    monkeypatch.setattr(tuning, "_train", untouchable)
    assert tuned_once(data, model_dir(), target, QUICK) == record
    with pytest.raises(AssertionError):
        tuned_once(tuning_set({}, suggestions[:-1]), model_dir(), target, QUICK)


class Named:
    """An encoder stand-in: its identity, and vectors that say which encoder made them."""

    def __init__(self, identity: str, value: float) -> None:
        self.identity, self.value, self.embedded = identity, value, 0

    def embed(self, texts):  # noqa: ANN001, ANN201
        self.embedded += len(texts)
        return np.full((len(texts), 4), self.value, dtype=np.float32)


def test_a_model_file_of_another_encoder_is_not_reused(tmp_path):
    path, fit = tmp_path / "model.safetensors", lambda vectors: None
    first = Named(MODEL_FOLDER, 1.0)
    model_file.reused_or_trained(path, "v", "labels", ["a", "b"], ["A", "B"], first, {}, fit)
    again = Named(MODEL_FOLDER, 2.0)
    matrix, _ = model_file.reused_or_trained(path, "v", "labels", ["a", "b"], ["A", "B"], again, {}, fit)
    assert again.embedded == 0 and (matrix == 1.0).all()  # same encoder: its saved embeddings are reused
    tuned = Named("tuned:abc", 3.0)
    matrix, _ = model_file.reused_or_trained(path, "v", "labels", ["a", "b"], ["A", "B"], tuned, {}, fit)
    assert tuned.embedded == 2 and (matrix == 3.0).all()
    assert model_file.load(path, "v").encoder == "tuned:abc"


def test_a_comment_is_embedded_once_for_every_decision_of_a_request():
    embedder = Embedder()
    model = embedder._loaded()
    encoded: list[str] = []
    encode = model.encode

    def counting(texts, **kwargs):  # noqa: ANN001, ANN003, ANN202
        encoded.extend(texts)
        return encode(texts, **kwargs)

    model.encode = counting
    first = embedder.embed(["The soup was cold.", "Please add more exercises.", "The soup was cold."])
    again = embedder.embed(["Please add more exercises.", "The soup was cold."])  # the next decision's call
    assert encoded == ["The soup was cold.", "Please add more exercises."]
    assert np.array_equal(again, first[[1, 0]]) and np.allclose(first[0], first[2])
