"""A learned model on disk: arrays in a safetensors file, everything else as JSON in its header.

No pickle anywhere: reading a file can never run code, so whoever can write the data folder
cannot take over the server through it. The file names exactly the labels it was trained on
(`fingerprint`): a model is trusted only for that set of labels, never for a later one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from ..taxonomy import NodePath, format_path, parse_stem
from .embedder import MODEL_FOLDER, Embedder, embedded
from .learned import LearnedModel, LevelThresholds, NodeModels

logger = logging.getLogger(__name__)
FORMAT = 1
ARRAYS = ("weights", "bias", "slope", "offset")


@dataclass(frozen=True)
class Saved:
    """What a model file holds: the model, and the embedding of each label it was trained on."""

    version: str  # the taxonomy version it was trained for
    fingerprint: str  # `fingerprint` of the labels it was trained on
    keys: tuple[str, ...]  # label ids, in the order of `vectors`' rows
    vectors: np.ndarray
    model: LearnedModel | None
    encoder: str = MODEL_FOLDER  # `Embedder.identity` of the encoder that made `vectors`

    def vector_of(self) -> dict[str, np.ndarray]:
        return dict(zip(self.keys, self.vectors))


def fingerprint(labels: Sequence[tuple[str, str, float]]) -> str:
    """A digest of (owner, label id, time written) of every label: any add, change or delete changes it."""
    return hashlib.sha256(json.dumps(sorted(labels)).encode()).hexdigest()[:32]


def save(path: Path, saved: Saved) -> None:
    """Write atomically: a temporary file of its own beside `path`, renamed over it."""
    arrays = {"vectors": np.ascontiguousarray(saved.vectors, dtype=np.float32)}
    header: dict = {"format": FORMAT, "version": saved.version, "fingerprint": saved.fingerprint,
                    "keys": list(saved.keys), "model": None,
                    "encoder": saved.encoder}
    if saved.model is not None:
        nodes = saved.model.models
        arrays |= {name: np.ascontiguousarray(getattr(nodes, name), dtype=np.float32) for name in ARRAYS}
        header["model"] = {"paths": [format_path(None, p) for p in nodes.paths],
                           "levels": {str(k): vars(v) for k, v in saved.model.levels.items()},
                           "gold_count": saved.model.gold_count, "trained_at": saved.model.trained_at}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        save_file(arrays, scratch, metadata={"classifier": json.dumps(header)})
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def load(path: Path, version: str) -> Saved | None:
    """The file's content when it was made for this taxonomy `version`; None when absent,
    unreadable (logged: it is retrained) or made for another version."""
    try:
        with safe_open(path, framework="np") as file:
            header = json.loads(file.metadata()["classifier"])
            arrays = {name: file.get_tensor(name) for name in file.keys()}
    except FileNotFoundError:
        return None
    except (OSError, SafetensorError, ValueError, KeyError, TypeError):
        logger.warning("learned model %s cannot be read; it will be trained anew", path, exc_info=True)
        return None
    if header.get("format") != FORMAT or header.get("version") != version:
        logger.warning("learned model %s was made for another taxonomy version or format; not applied", path)
        return None
    model = None
    if header["model"] is not None:
        meta = header["model"]
        paths: tuple[NodePath, ...] = tuple(parse_stem(p) for p in meta["paths"])
        nodes = NodeModels(paths, *(arrays[name] for name in ARRAYS))
        levels = {int(k): LevelThresholds(**v) for k, v in meta["levels"].items()}
        model = LearnedModel(version, nodes, levels, gold_count=meta["gold_count"], trained_at=meta["trained_at"])
    return Saved(version, header["fingerprint"], tuple(header["keys"]), arrays["vectors"], model,
                 header.get("encoder", MODEL_FOLDER))


def reused_or_trained(path: Path | None, version: str, digest: str, keys: Sequence[str], texts: Sequence[str],
                      embedder: Embedder, known: Mapping[str, np.ndarray],
                      fit: Callable[[np.ndarray], LearnedModel | None]) -> tuple[np.ndarray, LearnedModel | None]:
    """Blocking: the labels' embeddings (from `known` or the saved file where they are there, else
    computed) and their model: the saved one when it names exactly these labels (`digest`), else
    `fit(embeddings)`, saved at `path` when there is one. Nothing saved by another encoder
    (`Embedder.identity`) is reused: its embeddings are not this encoder's."""
    saved = load(path, version) if path is not None else None
    if saved is not None and saved.encoder != embedder.identity:
        saved = None
    matrix = embedded(keys, texts, embedder, {**(saved.vector_of() if saved else {}), **known})
    if saved is not None and digest and saved.fingerprint == digest:
        return matrix, saved.model
    model = fit(matrix)
    if path is not None:
        save(path, Saved(version, digest, tuple(keys), matrix, model, embedder.identity))
    return matrix, model
