"""Gold loaders: labelled CSV files turned into (text, stems, polarity per stem) examples.

Stems are paths below the root whose node names follow each taxonomy file in `configs/`.
"""
from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..taxonomy import NodePath

csv.field_size_limit(10_000_000)  # 20 Newsgroups posts run long


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    stems: frozenset[NodePath]
    polarity: dict[NodePath, str] = field(default_factory=dict)  # Positive | Negative | Neutral | Mixed
    # Per capability that decides before detailing (alerts, recommendations, trend): whether the
    # text holds one. Absent: the data says nothing about it.
    flags: dict[str, bool] = field(default_factory=dict)


def semeval_name(label: str) -> str:
    """`STYLE_OPTIONS` -> `Style options`: how configs/restaurants.json and laptops.json name nodes."""
    return label.replace("_", " ").capitalize()


# Review sentences are ordinary comments: no alert, no trend, except these, read and judged
# one by one among the sentences the model flagged (docs/eval-results.md, section 9).
JUDGED_ORDINARY: dict[str, dict[str, bool]] = {
    # "After dinner the manager grabbed my boyfriend, asked him: Where are you from...maybe you
    # dont know how things work in America...": a guest grabbed and told off for his origin.
    "1660047:3": {"alerts": True},
    # "During the course of the past 3 months, the chef and staff changed and it was not for the better."
    "494850:1": {"trend": True},
    # "Our experience did not ever get any better." (over repeated visits)
    "CLF#3:16": {"trend": True},
}


def load_semeval(path: Path) -> list[Example]:
    """SemEval-2016 Task 5 sentences: entity > attribute stems, a polarity per stem
    (`Mixed` where one sentence gives the same category two polarities); as ordinary
    comments, no alert and no trend (but for `JUDGED_ORDINARY`)."""
    examples = []
    for row in _rows(path):
        polarities: dict[NodePath, set[str]] = {}
        for opinion in json.loads(row["opinions"] or "[]"):
            stem = (semeval_name(opinion["entity"]), semeval_name(opinion["attribute"]))
            polarities.setdefault(stem, set()).add(opinion["polarity"].capitalize())
        examples.append(
            Example(
                id=row["sentence_id"],
                text=row["text"],
                stems=frozenset(polarities),
                polarity={s: p.pop() if len(p) == 1 else "Mixed" for s, p in polarities.items()},
                flags={"alerts": False, "trend": False, **JUDGED_ORDINARY.get(row["sentence_id"], {})},
            )
        )
    return examples


def load_20ng(path: Path) -> list[Example]:
    """20 Newsgroups posts: l1 > l2 > l3 stems named exactly as the columns; a two-deep
    branch has an empty l3 (or one equal to l2) and its stem stops at l2."""
    examples = []
    for row in _rows(path):
        stem = tuple(dict.fromkeys(p for p in (row["l1"], row["l2"], row["l3"]) if p))
        text = f"Subject: {row['subject']}\n\n{row['text']}" if row.get("subject") else row["text"]
        examples.append(Example(id=row["id"], text=text, stems=frozenset({stem})))
    return examples


def load_suggestions(path: Path) -> list[Example]:
    """SemEval-2019 Task 9 sentences (no header: id, sentence, label): label 1 is a suggestion,
    a comment that must get a recommendation."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.reader(handle) if len(row) == 3]
    return [Example(id=row[0], text=_unquoted(row[1]), stems=frozenset(), flags={"recommendations": row[2] == "1"})
            for row in rows]


def _unquoted(text: str) -> str:
    """The suggestion file wraps each sentence in one more pair of quotes."""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


SAFECITY_LABELS = ("Commenting", "Ogling/Facial Expressions/Staring", "Touching /Groping")


def load_safecity(path: Path) -> list[Example]:
    """SafeCity reports with at least one harassment label: each must raise an alert, typed
    sexual_harassment (rows with no label report incidents of other kinds and are left out)."""
    return [Example(id=f"safecity:{n}", text=row["Description"], stems=frozenset(), flags={"alerts": True})
            for n, row in enumerate(_rows(path)) if any(row[label] == "1" for label in SAFECITY_LABELS)]


LOADERS: dict[str, Callable[[Path], list[Example]]] = {
    "semeval": load_semeval, "20ng": load_20ng, "suggestions": load_suggestions, "safecity": load_safecity,
}


PARTS = ("all", "tune", "report")


def part(examples: list[Example], name: str) -> list[Example]:
    """One half of a sample: `tune` (the first) to choose settings and fit calibrations on,
    `report` (the second) to report on; `all` is the whole sample."""
    half = len(examples) // 2
    return {"all": examples, "tune": examples[:half], "report": examples[half:]}[name]


def sample(examples: list[Example], size: int, seed: int) -> list[Example]:
    """A reproducible sample (all examples when `size` is 0 or larger than the set)."""
    if size <= 0 or size >= len(examples):
        return list(examples)
    return random.Random(seed).sample(examples, size)


def excluding(examples: list[Example], size: int, seed: int) -> list[Example]:
    """The examples outside `sample(examples, size, seed)` (all of them when `size` is 0):
    where to draw examples or a calibration set that an evaluation sample never sees."""
    if size <= 0:
        return list(examples)
    held = {e.id for e in sample(examples, size, seed)}
    return [e for e in examples if e.id not in held]


def _rows(path: Path) -> list[dict[str, str]]:
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
