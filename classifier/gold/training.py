"""The learning loop: each taxonomy's stored gold becomes the `Knowledge` the walk reads.

At start, and by `python -m classifier.gold train`, the gold is embedded and the learned
model trained; both are saved beside the jobs (`<data dir>/learned/<taxonomy>.joblib`) with
the taxonomy version they were made for, and a file made for another version is never
applied. A new label joins retrieval at once (its text is embedded alone); the model is
retrained in the background once `retrain_after` labels changed since it was trained.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import joblib
import numpy as np

from ..taxonomy import Taxonomy
from .embedder import Embedder
from .knowledge import Knowledge, learned_from
from .labels import Label, taxonomy_version, text_key
from .learned import LearnedModel
from .store import GoldStore, usable

logger = logging.getLogger(__name__)
RETRAIN_AFTER = 20  # labels added or changed since the model was trained


@dataclass(frozen=True)
class Saved:
    """What a model file holds: the model and the embedding of every gold text it saw, by label id."""

    version: str
    model: LearnedModel | None
    vectors: dict[str, np.ndarray]
    trained_at: float


def model_path(models_dir: Path, taxonomy: Taxonomy) -> Path:
    return models_dir / f"{taxonomy.name}.joblib"


def load_saved(path: Path, taxonomy: Taxonomy) -> Saved | None:
    """The saved model for this taxonomy version; None when absent, unreadable or for another version."""
    try:
        saved = joblib.load(path)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a damaged file is retrained, not fatal
        logger.warning("learned model %s cannot be read; it will be retrained", path, exc_info=True)
        return None
    if not isinstance(saved, Saved) or saved.version != taxonomy_version(taxonomy):
        logger.warning("learned model %s was trained for another taxonomy version; not applied", path)
        return None
    return saved


def train_saved(labels: list[Label], taxonomy: Taxonomy, embedder: Embedder, path: Path,
                known: Mapping[str, np.ndarray] = {}) -> tuple[Knowledge, Saved]:
    """Embed what is not embedded yet, train, save (atomically): the knowledge and the file's content."""
    fresh = [label for label in labels if label.key not in known]
    vectors = {**known, **dict(zip((l.key for l in fresh), embedder.embed([l.text for l in fresh])))}
    matrix = np.array([vectors[l.key] for l in labels], dtype=np.float32).reshape(len(labels), -1)
    version = taxonomy_version(taxonomy)
    knowledge = learned_from(taxonomy, [l.text for l in labels], [l.stems for l in labels], matrix, embedder, version)
    saved = Saved(version, knowledge.model, {l.key: vectors[l.key] for l in labels}, time.time())
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    joblib.dump(saved, partial)
    partial.replace(path)
    return knowledge, saved


class Learning:
    """Keeps `knowledge` (a service's, by taxonomy name) in step with the stored gold."""

    def __init__(self, store: GoldStore, taxonomies: Mapping[str, Taxonomy], knowledge: dict[str, Knowledge],
                 embedder: Embedder, models_dir: Path, retrain_after: int = RETRAIN_AFTER) -> None:
        self.store, self.knowledge = store, knowledge
        self.taxonomies = {taxonomy.name: taxonomy for taxonomy in taxonomies.values()}  # gold is kept by name
        self.embedder, self.models_dir, self.retrain_after = embedder, models_dir, retrain_after
        self.trained_at: dict[str, float] = {}
        self._training: dict[str, asyncio.Task] = {}

    def load(self, name: str) -> None:
        """Blocking: the taxonomy's gold into `knowledge`, the saved model reused when it is
        current, else trained (and saved) anew. No gold: no knowledge."""
        taxonomy = self.taxonomies[name]
        labels = usable(self.store.labels(name), taxonomy)
        if not labels:
            self.knowledge.pop(name, None)
            return
        path = model_path(self.models_dir, taxonomy)
        saved = load_saved(path, taxonomy)
        if saved is not None and not self.store.changed_since(name, saved.trained_at):
            matrix = np.array([saved.vectors[l.key] for l in labels], dtype=np.float32)
            self.knowledge[name] = Knowledge(taxonomy, [l.text for l in labels], [l.stems for l in labels], matrix,
                                             self.embedder, saved.model)
            self.trained_at[name] = saved.trained_at
            return
        started = time.time()
        self.knowledge[name], _ = train_saved(labels, taxonomy, self.embedder, path, saved.vectors if saved else {})
        self.trained_at[name] = started
        logger.info("taxonomy %s: learned from %d labels", name, len(labels))

    async def start(self) -> None:
        """Every taxonomy's gold, loaded (or learned) in turn; one that fails keeps none."""
        for name in self.taxonomies:
            await self.reload(name)

    async def added(self, name: str, labels: list[Label]) -> None:
        """New labels join retrieval now; the model is retrained in the background after enough of them."""
        current = self.knowledge.get(name)
        if current is None:
            await self.reload(name)
            return
        vectors = await asyncio.to_thread(self.embedder.embed, [l.text for l in labels])
        self.knowledge[name] = with_labels(current, labels, vectors)
        if name not in self._training and await asyncio.to_thread(
                self.store.changed_since, name, self.trained_at.get(name, 0.0)) >= self.retrain_after:
            self._training[name] = asyncio.create_task(self.reload(name))
            self._training[name].add_done_callback(lambda _: self._training.pop(name, None))

    async def reload(self, name: str) -> None:
        """`load` in a thread (after a deletion, too: retrieval must forget the label)."""
        try:
            await asyncio.to_thread(self.load, name)
        except Exception:  # noqa: BLE001 - the old knowledge stays in use
            logger.exception("loading the gold of taxonomy %s failed; what it had stays in use", name)

    async def close(self) -> None:
        for task in list(self._training.values()):
            await asyncio.gather(task, return_exceptions=True)


def with_labels(knowledge: Knowledge, labels: list[Label], vectors: np.ndarray) -> Knowledge:
    """`knowledge` with these labels in its retrieval (a text labelled before gets the new label)."""
    keys = {label.key: k for k, label in enumerate(labels)}
    kept = [k for k, text in enumerate(knowledge.texts) if text_key(text) not in keys]
    return replace(knowledge, texts=[knowledge.texts[k] for k in kept] + [l.text for l in labels],
                   stems=[knowledge.stems[k] for k in kept] + [l.stems for l in labels],
                   vectors=np.vstack([knowledge.vectors[kept], vectors]).astype(np.float32))

