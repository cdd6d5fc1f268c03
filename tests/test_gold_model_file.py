"""A learned model as arrays: the same probabilities as scikit-learn's calibrated estimators,
saved to and read from a safetensors file that holds no pickle, trusted only for the exact
labels it names."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression

from classifier.gold import model_file
from classifier.gold.learned import CALIBRATION_FOLDS, LearnedModel, LevelThresholds, NodeModels
from classifier.gold.model_file import Saved


def fitted(seed: int) -> tuple[np.ndarray, CalibratedClassifierCV]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    y = (vectors[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CalibratedClassifierCV(LogisticRegression(C=4.0, max_iter=1000), cv=CALIBRATION_FOLDS,
                                       method="sigmoid").fit(vectors, y)
    return vectors, model


def test_the_arrays_give_scikit_learns_probabilities():
    vectors, first = fitted(0)
    _, second = fitted(1)
    nodes = NodeModels.from_fitted({("A",): first, ("A", "B"): second}, dimensions=8)
    expected = np.stack([first.predict_proba(vectors)[:, 1], second.predict_proba(vectors)[:, 1]], axis=1)
    assert np.allclose(nodes.predict(vectors), expected, atol=1e-5)


def test_a_model_file_holds_arrays_and_json_only_and_reads_back(tmp_path):
    vectors, first = fitted(0)
    model = LearnedModel("v1", NodeModels.from_fitted({("A",): first}, 8), {1: LevelThresholds(0.4, 0.1, 0.9)},
                         gold_count=60, trained_at=5.0)
    path = tmp_path / "learned" / "restaurants" / "cli.safetensors"
    model_file.save(path, Saved("v1", "f" * 32, tuple(f"k{i}" for i in range(60)), vectors, model))
    raw = path.read_bytes()
    assert b"\x80\x04" not in raw[:4096] and b"pickle" not in raw  # no pickle protocol header, no pickle module
    back = model_file.load(path, "v1")
    assert back is not None and back.fingerprint == "f" * 32 and back.keys[3] == "k3"
    assert back.model is not None and back.model.levels == model.levels and back.model.gold_count == 60
    assert np.allclose(back.model.models.predict(vectors), model.models.predict(vectors))
    assert model_file.load(path, "v2") is None  # made for another taxonomy version: never applied
    path.write_bytes(raw[:100])
    assert model_file.load(path, "v1") is None  # damaged: trained anew, not fatal
    assert list(path.parent.iterdir()) == [path]  # no temporary file left beside it


@pytest.mark.parametrize("change", ["add", "delete", "rewrite"])
def test_the_fingerprint_changes_with_any_change_of_the_labels(change):
    labels = [("cli", "a", 1.0), ("k1", "b", 2.0)]
    changed = {"add": labels + [("k1", "c", 3.0)], "delete": labels[:1], "rewrite": [labels[0], ("k1", "b", 2.5)]}
    assert model_file.fingerprint(changed[change]) != model_file.fingerprint(labels)
    assert model_file.fingerprint(list(reversed(labels))) == model_file.fingerprint(labels)
