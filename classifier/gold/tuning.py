"""Fine-tuning the sentence encoder on the operator's labels, kept only where it measures better.

The learned models read one embedding per comment (topics, every flag, the retrieval of
examples). A frozen all-MiniLM-L6-v2 knows English but not a customer's conventions; tuned on
the labels (mean pooling and one multi-label head over every decision: each topic node with
enough examples, each flag), its embeddings separate what the labels separate.

Whether the tuned encoder is better is measured, never assumed: a share of the labelled
comments is held back from the tuning, a logistic regression per decision is fitted on the
rest with each encoder's embeddings, and the tuned one is kept only when its average precision
on the held-back comments (per task: each taxonomy's topics, each flag; the mean of the tasks)
is higher.
With few labels it seldom is, and the frozen encoder stays.

The tuned encoder is a sentence-transformers folder (weights as safetensors, never a pickle)
under `<data dir>/learned/encoder/`, with `tuning.json` saying what it was tuned on and how it
measured; `Embedder.for_data` reads it, so `gold train` and a server on the same data folder
embed alike. Training runs on transformers' `Trainer`, bounded by `max_seconds`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..taxonomy import NodePath, format_path
from .embedder import TUNING_RECORD, Embedder, EmbedderMissing
from .flag_labels import FlagLabel
from .knowledge import normalized
from .learned import MIN_EXAMPLES

logger = logging.getLogger(__name__)
MIN_TEXTS = 100  # fewer labelled comments than this: nothing to tune on, nor to measure it by
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TuningSettings:
    """How the encoder is tuned: the measured defaults of docs/eval-results.md section 12."""

    epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 16
    max_length: int = 128  # tokens a comment is cut to while tuning (long reviews cost time, add little)
    max_seconds: float = 600.0  # training stops here, whatever the epochs say
    max_weight: float = 10.0  # the most a decision's positives weigh against its negatives (1: unweighted)
    held_share: float = 0.2  # labelled comments held back to measure the tuned encoder against the frozen one
    seed: int = 42


@dataclass(frozen=True)
class TuningSet:
    """Every labelled comment once, and per decision (column) its target where labelled."""

    texts: list[str]
    columns: list[str]  # "<taxonomy>:<path>" for topics, "flag:<capability>" for flags
    targets: np.ndarray  # (texts, columns) 0/1
    known: np.ndarray  # (texts, columns) whether the comment is labelled for that column

    @cached_property
    def digest(self) -> str:
        """Names exactly these labels: a tuning on them is not repeated (computed once)."""
        content = [self.columns, self.texts, self.targets.tolist(), self.known.tolist()]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:32]

    def task(self, column: int) -> str:
        """The task a column belongs to: its flag, or its taxonomy."""
        name = self.columns[column]
        return name if name.startswith("flag:") else name.split(":", 1)[0]


def tuning_set(topics: Mapping[str, Sequence[tuple[str, frozenset[NodePath]]]],
               flags: Sequence[FlagLabel]) -> TuningSet:
    """The labels as one table: per taxonomy (name -> (text, stems) per label) a column per
    node path its labels reach, per flag a column; columns with fewer than `MIN_EXAMPLES`
    comments of either kind are left out (nothing to learn there), and so are comments
    labelled for none of the columns left (SafeCity's reports, all alerts, alone)."""
    rows: dict[str, int] = {}
    texts: list[str] = []
    cells: dict[tuple[int, str], bool] = {}

    def row(text: str) -> int:
        key = normalized(text)
        if key not in rows:
            rows[key] = len(texts)
            texts.append(text)
        return rows[key]

    columns: list[str] = []
    for name, labels in topics.items():
        paths = sorted({stem[:depth] for _, stems in labels for stem in stems for depth in range(1, len(stem) + 1)})
        named = [f"{name}:{format_path(None, path)}" for path in paths]
        columns += named
        for text, stems in labels:
            k = row(text)
            for path, column in zip(paths, named):
                cells[(k, column)] = any(stem[: len(path)] == path for stem in stems)
    for label in flags:
        column = f"flag:{label.capability}"
        if column not in columns:
            columns.append(column)
        cells[(row(label.text), column)] = label.value
    targets = np.zeros((len(texts), len(columns)), dtype=np.float32)
    known = np.zeros((len(texts), len(columns)), dtype=bool)
    index = {column: j for j, column in enumerate(columns)}
    for (k, column), value in cells.items():
        targets[k, index[column]], known[k, index[column]] = value, True
    found, labelled = (targets * known).sum(axis=0), known.sum(axis=0)
    keep = np.minimum(found, labelled - found) >= MIN_EXAMPLES
    rows_kept = known[:, keep].any(axis=1)  # a comment labelled only for a dropped column teaches nothing
    return TuningSet([t for t, k in zip(texts, rows_kept) if k], [c for c, k in zip(columns, keep) if k],
                     targets[rows_kept][:, keep], known[rows_kept][:, keep])


@dataclass
class TuningReport:
    """What a tuning did and measured (also `tuning.json` beside a kept encoder)."""

    texts: int
    columns: int
    held: int = 0
    kept: bool = False
    reason: str = ""
    frozen: dict[str, float] = field(default_factory=dict)  # task -> mean average precision, held back
    tuned: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0
    settings: dict = field(default_factory=dict)
    labels_digest: str = ""
    digest: str = ""  # of the tuned weights: the encoder's identity (`Embedder.identity`)


def held_rows(count: int, share: float, seed: int) -> np.ndarray:
    """A reproducible mask of the rows held back from tuning."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    mask = np.zeros(count, dtype=bool)
    mask[order[: max(1, round(count * share))]] = True
    return mask


def task_scores(data: TuningSet, vectors: np.ndarray, held: np.ndarray) -> dict[str, float]:
    """Per task, the average precision on the held-back rows of a logistic regression per column
    fitted on the other rows, over all the task's (row, column) decisions together: micro, as
    the eval's F1 counts, so a rare topic weighs by its comments (columns too thin to fit or
    score are left out)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    per_task: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for j in range(len(data.columns)):
        fit, score = data.known[:, j] & ~held, data.known[:, j] & held
        y_fit, y_score = data.targets[fit, j], data.targets[score, j]
        if min(y_fit.sum(), len(y_fit) - y_fit.sum()) < MIN_EXAMPLES or not y_score.any():
            continue
        model = LogisticRegression(C=4.0, max_iter=1000).fit(vectors[fit], y_fit)
        truth, predicted = per_task.setdefault(data.task(j), ([], []))
        truth.append(y_score)
        predicted.append(model.predict_proba(vectors[score])[:, 1])
    return {task: float(average_precision_score(np.concatenate(truth), np.concatenate(predicted)))
            for task, (truth, predicted) in sorted(per_task.items())}


def overall(scores: Mapping[str, float]) -> float:
    return float(np.mean(list(scores.values()))) if scores else 0.0


def tune(data: TuningSet, base: Path, target: Path, settings: TuningSettings = TuningSettings(),
         progress: Progress = logger.info) -> TuningReport:
    """Blocking: tune a copy of the encoder at `base` on `data` (less the held-back rows),
    measure it against the frozen one, and install it at `target` only when it measures
    better; otherwise remove any encoder `target` held (the frozen one serves)."""
    report = TuningReport(len(data.texts), len(data.columns), settings=asdict(settings),
                          labels_digest=data.digest)
    if len(data.texts) < MIN_TEXTS or not data.columns:
        report.reason = (f"{len(data.texts)} labelled comments and {len(data.columns)} decisions with examples of "
                         f"both kinds: too few to tune on (at least {MIN_TEXTS} comments); the frozen encoder serves")
        _remove(target)
        _write(_last(target), report)
        return report
    held = held_rows(len(data.texts), settings.held_share, settings.seed)
    report.held = int(held.sum())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".encoder-", dir=_parent(target)) as scratch:
        tuned = Path(scratch) / "encoder"
        report.steps = _train(data, ~held, base, tuned, settings, progress)
        report.seconds = round(time.perf_counter() - started, 1)
        progress("measuring the tuned encoder against the frozen one on the held-back labels")
        report.frozen = task_scores(data, Embedder(folder=base).embed(data.texts), held)
        report.tuned = task_scores(data, Embedder(folder=tuned).embed(data.texts), held)
        report.kept = overall(report.tuned) > overall(report.frozen)
        report.reason = (f"held-back average precision {overall(report.tuned):.3f} tuned, "
                         f"{overall(report.frozen):.3f} frozen: the {'tuned' if report.kept else 'frozen'} "
                         "encoder serves")
        if report.kept:
            report.digest = hashlib.sha256((tuned / "model.safetensors").read_bytes()).hexdigest()[:16]
            _write(tuned / TUNING_RECORD, report)
            _remove(target)
            tuned.rename(target)
        else:
            _remove(target)
    _write(_last(target), report)
    return report


def _last(target: Path) -> Path:
    return target.parent / f"{target.name}-tuning.json"


def _write(path: Path, report: TuningReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(report), indent=1) + "\n", encoding="utf-8")


def tuned_once(data: TuningSet, base: Path, target: Path, settings: TuningSettings,
               progress: Progress = logger.info) -> dict:
    """`tune`'s record, without tuning again when the last tuning into `target` was on exactly
    these labels with these settings."""
    labels_digest = data.digest
    try:
        last = json.loads(_last(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        last = None
    if last is not None and last.get("labels_digest") == labels_digest and last.get("settings") == asdict(settings):
        return last
    return asdict(tune(data, base, target, settings, progress))


def _parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


def _remove(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)


def _train(data: TuningSet, rows: np.ndarray, base: Path, out: Path, settings: TuningSettings,
           progress: Progress) -> int:
    """Tune the encoder at `base` on `rows` of `data` and save it, a sentence-transformers
    folder, at `out`: how many optimiser steps ran."""
    import torch
    from transformers import AutoModel, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from .heads import Heads

    if not (base / "config.json").exists():
        raise EmbedderMissing(f"no encoder in {base}: run scripts/setup.sh")
    tokenizer = AutoTokenizer.from_pretrained(base)
    texts = [data.texts[k] for k in np.flatnonzero(rows)]
    encoded = tokenizer(texts, truncation=True, max_length=settings.max_length)
    targets, known = torch.tensor(data.targets[rows]), torch.tensor(data.known[rows], dtype=torch.float32)
    items = [{"input_ids": ids, "attention_mask": mask, "targets": targets[k], "known": known[k]}
             for k, (ids, mask) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"]))]

    def collate(batch: list[dict]) -> dict:
        padded = tokenizer.pad([{"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]} for b in batch],
                               return_tensors="pt")
        return {**padded, "targets": torch.stack([b["targets"] for b in batch]),
                "known": torch.stack([b["known"] for b in batch])}

    found, labelled = (targets * known).sum(0), known.sum(0)
    balance = ((labelled - found) / found.clamp(min=1)).clamp(1.0, settings.max_weight)  # rare decisions weigh more
    model = Heads(AutoModel.from_pretrained(base), len(data.columns), balance)
    deadline = time.monotonic() + settings.max_seconds

    class Bounds(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201 - Trainer's hook
            if state.global_step % 20 == 0 or state.global_step == state.max_steps:
                progress(f"tuning the encoder: step {state.global_step} of {state.max_steps}")
            if time.monotonic() > deadline:
                progress(f"tuning the encoder: stopped at step {state.global_step} of {state.max_steps}, "
                         f"the {settings.max_seconds:.0f} s it may take")
                control.should_training_stop = True
            return control

    with tempfile.TemporaryDirectory(prefix="classifier-tuning-") as scratch:
        arguments = TrainingArguments(
            output_dir=scratch, num_train_epochs=settings.epochs, learning_rate=settings.learning_rate,
            per_device_train_batch_size=settings.batch_size, warmup_steps=0.1, weight_decay=0.01,
            train_sampling_strategy="group_by_length", save_strategy="no", report_to=[], logging_strategy="no", use_cpu=True,
            seed=settings.seed, remove_unused_columns=False, disable_tqdm=True, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=arguments, train_dataset=items, data_collator=collate,
                          callbacks=[Bounds()])
        steps = trainer.train().global_step
    shutil.copytree(base, out, ignore=shutil.ignore_patterns("*.bin", "*.safetensors", "*.onnx", "onnx",
                                                             "openvino", TUNING_RECORD))
    model.encoder.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return steps
