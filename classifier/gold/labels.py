"""A labelled comment (gold) and the ways it is read: checked against its taxonomy, from a
CSV file (`text` + `|`-joined `>` paths, the eval files' shape) or an eval file's layout.

Paths may be written as stems (`Food>Quality`) or with the root's name in front
(`restaurants>Food>Quality`, as `classification_paths` are); each must end at a leaf.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..outputs import POLARITIES
from ..taxonomy import NodePath, Taxonomy, format_path, parse_stem
from . import OPERATOR  # noqa: F401 - the owner of imported labels, named where labels are
from .knowledge import text_key

SOURCES = ("import", "correction", "label_studio")


class LabelError(ValueError):
    """A label that cannot be stored; the message names the path or field to fix."""


@dataclass(frozen=True)
class Label:
    text: str
    stems: frozenset[NodePath]  # complete stems; empty: the comment is about none of the topics
    polarity: dict[NodePath, str] = field(default_factory=dict)  # per stem, where given

    @property
    def key(self) -> str:
        """Its id: one label per text (case and spacing aside) and taxonomy."""
        return text_key(self.text)


def taxonomy_version(taxonomy: Taxonomy) -> str:
    """A digest of the tree's paths: a model trained for another version is never applied."""
    paths = sorted(format_path(None, path) for path, _ in taxonomy.nodes())
    return hashlib.sha256(json.dumps([taxonomy.root.name, paths]).encode()).hexdigest()[:16]


def stem_of(taxonomy: Taxonomy, written: str) -> NodePath:
    """A written path as a complete stem of `taxonomy`; `LabelError` names it when it is not one."""
    path = parse_stem(written.strip())
    if len(path) > 1 and path[0] == taxonomy.root.name and path[1:] in taxonomy:
        path = path[1:]
    if not taxonomy.is_complete_stem(path):
        what = "is not a path of" if path not in taxonomy else "does not end at a leaf of"
        raise LabelError(f"label path {written!r} {what} taxonomy {taxonomy.name!r}")
    return path


def checked(taxonomy: Taxonomy, text: Any, paths: Iterable[str], polarity: Mapping[str, str] | None = None) -> Label:
    """A label from its written parts, every path and polarity checked against `taxonomy`."""
    if not isinstance(text, str) or not text.strip():
        raise LabelError("a label needs a non-empty comment text")
    if "\x00" in text:
        raise LabelError("the label's text holds a NUL character; remove it")
    stems = {written: stem_of(taxonomy, written) for written in paths}
    feelings: dict[NodePath, str] = {}
    for written, value in (polarity or {}).items():
        stem = stem_of(taxonomy, written)
        if stem not in stems.values():
            raise LabelError(f"polarity given for {written!r}, which is not among the label's paths")
        if value not in POLARITIES:
            raise LabelError(f"polarity {value!r} of {written!r} is none of {', '.join(POLARITIES)}")
        feelings[stem] = value
    return Label(text, frozenset(stems.values()), feelings)


def read_csv(path: Path, taxonomy: Taxonomy) -> list[Label]:
    """A CSV of `text` and `paths` (`|`-joined; empty: about none of the topics), optionally
    `polarity` (`|`-joined, one per path). `LabelError` names the row."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:  # -sig: Excel's byte-order mark
            return _read_rows(path, csv.DictReader(handle), taxonomy)
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from None


def _read_rows(path: Path, reader: csv.DictReader, taxonomy: Taxonomy) -> list[Label]:
    missing = {"text", "paths"} - set(reader.fieldnames or ())
    if missing:
        raise LabelError(f"{path}: the CSV needs the columns text and paths (missing: {', '.join(sorted(missing))})")
    labels = []
    for row_no, row in enumerate(reader, start=2):
        paths = [p for p in (row["paths"] or "").split("|") if p.strip()]
        feelings = [p.strip() for p in (row.get("polarity") or "").split("|") if p.strip()]
        if feelings and len(feelings) != len(paths):
            raise LabelError(f"{path} line {row_no}: {len(feelings)} polarities for {len(paths)} paths")
        try:
            labels.append(checked(taxonomy, row["text"], paths, dict(zip(paths, feelings))))
        except LabelError as exc:
            raise LabelError(f"{path} line {row_no}: {exc}") from None
    return labels


def to_wire(label: Label, taxonomy: Taxonomy) -> dict[str, Any]:
    """A label as the API and exports write it: stems in file order, polarity by stem."""
    stems = taxonomy.in_file_order(set(label.stems))
    return {"id": label.key, "text": label.text, "paths": [format_path(None, s) for s in stems],
            "polarity": {format_path(None, s): label.polarity[s] for s in stems if s in label.polarity}}

