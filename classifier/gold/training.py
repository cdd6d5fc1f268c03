"""The learning loop: each owner's labels of a taxonomy become the `Knowledge` its answers read.

Per taxonomy and owner (`store`: the operator's imports, each API key's corrections) there is
one slot, and one writer for it: every change of its labels and every swap of its knowledge
happens under the slot's lock, reading the store as the truth, so no update is lost and no
older state overwrites a newer one. A change reaches retrieval at once; the learned model is
retrained in the background (one training at a time, in a thread of its own, never on a
request's path) once `retrain_after` labels were added, changed or deleted, and not more often
than every `retrain_interval` seconds. A finished training swaps only the model, never the
retrieval that changed meanwhile.

Models are saved as `<data dir>/learned/<taxonomy>/<owner>.safetensors` (`model_file`), naming
the labels they were trained on: at start a model is reused only for exactly those labels and
otherwise trained anew. A slot that fails to load says so in `status()` (`/ready`, `/health`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, MutableMapping, Sequence, TypeVar

import numpy as np

from ..taxonomy import Taxonomy
from . import OPERATOR, model_file
from .embedder import Embedder, embedded
from .flag_labels import FLAGS, FlagStore
from .flag_models import FlagKnowledge, flag_model
from .knowledge import Knowledge, learned_from
from .labels import Label, taxonomy_version
from .polarity import single_polarities, train_polarity
from .store import GoldStore, Stored, usable

logger = logging.getLogger(__name__)
RETRAIN_AFTER = 20  # labels added, changed or deleted since the model was trained
RETRAIN_INTERVAL = 60.0  # seconds at least between two trainings of one slot
T = TypeVar("T")
SlotKey = tuple[str, str]  # (taxonomy name, owner)
FLAG_SLOT = "(flags)"  # the slot name of an owner's flag labels, which belong to no taxonomy


class QuotaExceeded(ValueError):
    """An owner holds as many labels of a taxonomy as it may."""


def model_path(models_dir: Path, taxonomy: Taxonomy, owner: str = OPERATOR) -> Path:
    return models_dir / taxonomy.name / f"{owner or 'anonymous'}.safetensors"


def labels_digest(stored: Sequence[Stored]) -> str:
    return model_file.fingerprint([(s.owner, s.label.key, s.updated_at) for s in stored])


def build_flags(store: FlagStore, owner: str, embedder: Embedder, models_dir: Path | None) -> FlagKnowledge | None:
    """Blocking: `owner`'s flag labels learned from, per capability (saved models reused when
    they name exactly these labels, else trained and saved beside the topics' models)."""
    models = {}
    for capability in FLAGS:
        rows = store.labels(owner, capability)
        if rows:
            path = models_dir / "flags" / f"{owner or 'anonymous'}-{capability}.safetensors" if models_dir else None
            digest = model_file.fingerprint([(owner, label.key, when) for label, when in rows])
            models[capability] = flag_model(capability, [label for label, _ in rows], embedder, path=path,
                                            digest=digest)
    return FlagKnowledge(models, embedder) if models else None


def build(stored: Sequence[Stored], taxonomy: Taxonomy, embedder: Embedder, path: Path | None,
          known: Mapping[str, np.ndarray], *, train: bool, model: Any = None, polarity: Any = None) -> Knowledge | None:
    """Blocking: the knowledge of these labels. Embeddings come from `known` (or the saved file)
    where they are there, else are computed. With `train`, the model is the saved one when it
    was trained on exactly these labels, else one trained now (and saved), and the polarity
    model is trained (in a second: it is not saved); else `model` and `polarity`."""
    if not stored:
        return None
    labels = [s.label for s in stored]
    keys, texts, stems = [l.key for l in labels], [l.text for l in labels], [l.stems for l in labels]
    if not train:
        return Knowledge(taxonomy, texts, stems, embedded(keys, texts, embedder, known), embedder, model, polarity)
    version = taxonomy_version(taxonomy)
    matrix, fitted = model_file.reused_or_trained(
        path, version, labels_digest(stored), keys, texts, embedder, known,
        lambda vectors: learned_from(taxonomy, texts, stems, vectors, embedder, version).model)
    polarity = train_polarity(matrix, single_polarities(stems, [l.polarity for l in labels]))
    return Knowledge(taxonomy, texts, stems, matrix, embedder, fitted, polarity)


@dataclass
class Slot:
    """One taxonomy's labels of one owner, as the learning loop keeps them."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    changes: int = 0  # labels added, changed or deleted since the last training began
    trained: float = float("-inf")  # when (monotonic) the last training began
    training: asyncio.Task | None = None
    state: str = "loading"  # loading | ready | empty | failed
    error: str = ""


class Learning:
    """Keeps `knowledge` (a service's, by (taxonomy name, owner)) in step with the stored labels."""

    def __init__(self, store: GoldStore, taxonomies: Mapping[str, Taxonomy],
                 knowledge: MutableMapping[SlotKey, Knowledge], embedder: Embedder, models_dir: Path,
                 retrain_after: int = RETRAIN_AFTER, retrain_interval: float = RETRAIN_INTERVAL,
                 max_labels: int = 100_000, flag_knowledge: MutableMapping[str, FlagKnowledge] | None = None) -> None:
        self.store, self.knowledge, self.embedder, self.models_dir = store, knowledge, embedder, models_dir
        self.flag_store = FlagStore(store.engine)
        self.flag_knowledge = flag_knowledge if flag_knowledge is not None else {}
        self.taxonomies = {taxonomy.name: taxonomy for taxonomy in taxonomies.values()}  # gold is kept by name
        self.retrain_after, self.retrain_interval, self.max_labels = retrain_after, retrain_interval, max_labels
        self.slots: dict[SlotKey, Slot] = {}
        self._trainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gold-training")

    def _slot(self, key: SlotKey) -> Slot:
        return self.slots.setdefault(key, Slot())

    async def _in_trainer(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._trainer, work)

    def _known(self, key: SlotKey) -> dict[str, np.ndarray]:
        """The embeddings already computed for this slot's view: its own knowledge's and the operator's."""
        known: dict[str, np.ndarray] = {}
        for k in ((key[0], OPERATOR), key):
            if (have := self.knowledge.get(k)) is not None:
                known.update(zip(have.keys, have.vectors))
        return known

    def _view(self, key: SlotKey) -> list[Stored]:
        return usable(self.store.view(*key), self.taxonomies[key[0]])

    async def start(self) -> None:
        """The operator's flag labels, then every taxonomy's slots (the operator's first), loaded
        or trained in turn."""
        logger.info("learned models read the %s encoder", self.embedder.identity)
        await self.load_flags(OPERATOR)
        for name in self.taxonomies:
            owners = await asyncio.to_thread(self.store.owners, name)
            for owner in [OPERATOR, *(o for o in owners if o != OPERATOR)]:
                await self.load((name, owner))

    async def load(self, key: SlotKey) -> None:
        """The slot's knowledge from the store, its saved model reused when it names exactly these
        labels, else trained (and saved); a failure is kept in the slot's state, shown by `status`."""
        slot = self._slot(key)
        async with slot.lock:
            slot.state = "loading"
            try:
                path = model_path(self.models_dir, self.taxonomies[key[0]], key[1])
                knowledge = await self._in_trainer(lambda: build(
                    self._view(key), self.taxonomies[key[0]], self.embedder, path, self._known(key), train=True))
            except Exception as exc:  # noqa: BLE001 - the slot says so; answers go on without it
                logger.exception("loading the labels of taxonomy %s (owner %r) failed", *key)
                slot.state, slot.error = "failed", f"{type(exc).__name__}: {exc}"
                return
            self._install(key, knowledge)
            slot.state, slot.error, slot.changes, slot.trained = "ready" if knowledge else "empty", "", 0, time.monotonic()

    async def load_flags(self, owner: str) -> None:
        """`owner`'s flag labels into `flag_knowledge`; a failure is kept in its slot's state."""
        slot = self._slot((FLAG_SLOT, owner))
        async with slot.lock:
            try:
                flags = await self._in_trainer(lambda: build_flags(self.flag_store, owner, self.embedder,
                                                                   self.models_dir))
            except Exception as exc:  # noqa: BLE001 - the LLM decides alone meanwhile; the slot says why
                logger.exception("loading the flag labels of owner %r failed", owner)
                slot.state, slot.error = "failed", f"{type(exc).__name__}: {exc}"
                return
            if flags is None:
                self.flag_knowledge.pop(owner, None)
            else:
                self.flag_knowledge[owner] = flags
            slot.state, slot.error = "ready" if flags else "empty", ""

    def _install(self, key: SlotKey, knowledge: Knowledge | None) -> None:
        if knowledge is None:
            self.knowledge.pop(key, None)
        else:
            self.knowledge[key] = knowledge

    async def add(self, name: str, owner: str, labels: list[Label], *, source: str) -> int:
        """Store `owner`'s labels and put them in its retrieval now: how many were new.
        `QuotaExceeded` when they would take it past `max_labels`."""
        key = (name, owner)
        slot = self._slot(key)
        async with slot.lock:
            def store() -> int:
                held = self.store.count(name, owner)
                if held + len(labels) > self.max_labels:  # replacing a label it holds adds none
                    mine = {s.label.key for s in self.store.labels(name, owner)}
                    if held + len({l.key for l in labels} - mine) > self.max_labels:
                        raise QuotaExceeded(f"{held} labels of taxonomy {name!r} are stored for this key and "
                                            f"{self.max_labels} is the most it may hold: delete some first")
                self.embedder.load()  # no embedding model: refused before anything is stored
                return self.store.put(name, labels, source=source, owner=owner)[0]

            added = await asyncio.to_thread(store)
            await self._refresh(key, slot, len(labels))
        return added

    async def remove(self, name: str, owner: str, label_id: str) -> bool:
        """Delete `owner`'s label: gone from retrieval now, from the model at the next training."""
        key = (name, owner)
        slot = self._slot(key)
        async with slot.lock:
            if not await asyncio.to_thread(self.store.delete, name, label_id, owner):
                return False
            await self._refresh(key, slot, 1)
        return True

    async def _refresh(self, key: SlotKey, slot: Slot, changed: int) -> None:
        """Under the slot's lock: its retrieval read anew from the store (the model kept), and a
        training scheduled when enough changed."""
        current = self.knowledge.get(key) or self.knowledge.get((key[0], OPERATOR))
        model, polarity = (current.model, current.polarity) if current is not None else (None, None)
        knowledge = await asyncio.to_thread(lambda: build(self._view(key), self.taxonomies[key[0]], self.embedder,
                                                          None, self._known(key), train=False, model=model,
                                                          polarity=polarity))
        self._install(key, knowledge)
        slot.state = "ready" if knowledge else "empty"
        slot.changes += changed
        self._schedule(key, slot)

    def _schedule(self, key: SlotKey, slot: Slot) -> None:
        if slot.changes < self.retrain_after or slot.training is not None:
            return
        slot.training = asyncio.create_task(self._retrain(key, slot))

    async def _retrain(self, key: SlotKey, slot: Slot) -> None:
        """Train on a snapshot of the labels, then swap in the model alone (retrieval may be newer)."""
        try:
            await asyncio.sleep(max(0.0, slot.trained + self.retrain_interval - time.monotonic()))
            async with slot.lock:
                stored, taken = await asyncio.to_thread(self._view, key), slot.changes
                known = self._known(key)
                slot.trained = time.monotonic()
            path = model_path(self.models_dir, self.taxonomies[key[0]], key[1])
            trained = await self._in_trainer(lambda: build(stored, self.taxonomies[key[0]], self.embedder, path,
                                                           known, train=True))
            async with slot.lock:
                current = self.knowledge.get(key)
                if trained is not None and current is not None:
                    self.knowledge[key] = replace(current, model=trained.model, polarity=trained.polarity)
                slot.changes -= taken
                logger.info("taxonomy %s (owner %r): learned from %d labels", *key, len(stored))
        except Exception as exc:  # noqa: BLE001 - the model in use stays; the slot says why
            logger.exception("training on the labels of taxonomy %s (owner %r) failed", *key)
            slot.error = f"training failed: {type(exc).__name__}: {exc}"
        finally:
            slot.training = None
        if slot.changes >= self.retrain_after:
            self._schedule(key, slot)

    def status(self) -> dict[str, Any]:
        """Per taxonomy: how many owners have labels loaded, and every slot that failed, with why."""
        report: dict[str, Any] = {}
        for (name, owner), slot in self.slots.items():
            entry = report.setdefault(name, {"slots": 0, "loading": 0, "failed": []})
            entry["slots"] += slot.state in ("ready", "loading")
            entry["loading"] += slot.state == "loading"
            if slot.state == "failed" or slot.error:
                entry["failed"].append({"owner": "operator" if owner == OPERATOR else "key", "error": slot.error})
        return report

    async def close(self) -> None:
        tasks = [slot.training for slot in self.slots.values() if slot.training is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._trainer.shutdown(wait=True)
