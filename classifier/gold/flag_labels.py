"""Labels of the decided capabilities (alerts, recommendations, trend): whether a comment holds
one, per owner, read from a CSV or from the labelled files' shapes, kept in the jobs database.

They belong to no taxonomy (an alert is an alert whatever the topics), and are kept apart from
topic labels: a file that says only whether sentences are suggestions says nothing of their
topics, so importing it never labels a comment as "about no topic".
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from ..jobs.tables import flag_labels
from .knowledge import text_key
from .labels import SOURCES, LabelError

FLAGS = ("alerts", "recommendations", "trend")  # the capabilities that decide before they detail
TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")


@dataclass(frozen=True)
class FlagLabel:
    text: str
    capability: str  # one of FLAGS
    value: bool  # the comment holds one
    detail: str | None = None  # alerts: the alert type, where given

    @property
    def key(self) -> str:
        return text_key(self.text)


def from_flags(text: str, flags: dict[str, bool], detail: str | None = None) -> list[FlagLabel]:
    """A labelled file's row (its `flags`: capability -> holds one) as flag labels."""
    return [FlagLabel(text, name, value, detail if name == "alerts" and value else None)
            for name, value in flags.items() if name in FLAGS]


def read_flags_csv(path: Path) -> list[FlagLabel]:
    """A CSV of `text` and any of `alerts`, `recommendations`, `trend` (1/0, true/false, yes/no;
    empty: not labelled), optionally `alert_type`. `LabelError` names the line and column."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = [name for name in FLAGS if name in (reader.fieldnames or ())]
            if "text" not in (reader.fieldnames or ()) or not columns:
                raise LabelError(f"{path}: the CSV needs a text column and at least one of {', '.join(FLAGS)}")
            labels = []
            for row_no, row in enumerate(reader, start=2):
                text = (row["text"] or "").strip()
                if not text:
                    raise LabelError(f"{path} line {row_no}: the text is empty")
                for name in columns:
                    written = (row[name] or "").strip().casefold()
                    if written and written not in TRUE + FALSE:
                        raise LabelError(f"{path} line {row_no}: {name} is {row[name]!r}; write 1 or 0 (empty: unknown)")
                    if written:
                        labels.append(FlagLabel(text, name, written in TRUE,
                                                (row.get("alert_type") or "").strip() or None if name == "alerts" else None))
            return labels
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from None


class FlagStore:
    """Flag labels per owner and capability, one per text (the same text again replaces it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, labels: Iterable[FlagLabel], *, source: str, owner: str) -> int:
        """Store the labels: how many were written."""
        if source not in SOURCES:
            raise LabelError(f"unknown label source {source!r}; one of {', '.join(SOURCES)}")
        rows = {(label.capability, label.key): label for label in labels}
        now = time.time()
        with self.engine.begin() as db:
            insert = postgresql_insert if db.dialect.name == "postgresql" else sqlite_insert
            for (capability, key), label in rows.items():
                values = {"text": label.text, "value": label.value, "detail": label.detail, "source": source,
                          "updated_at": now}
                statement = insert(flag_labels).values(owner=owner, capability=capability, text_key=key,
                                                       created_at=now, **values)
                c = flag_labels.c
                db.execute(statement.on_conflict_do_update(index_elements=[c.owner, c.capability, c.text_key],
                                                           set_=values))
        return len(rows)

    def labels(self, owner: str, capability: str) -> list[tuple[FlagLabel, float]]:
        """`owner`'s labels of one capability by id, with when each was written."""
        c = flag_labels.c
        query = select(flag_labels).where(c.owner == owner, c.capability == capability).order_by(c.text_key)
        with self.engine.connect() as db:
            return [(FlagLabel(row.text, row.capability, bool(row.value), row.detail), row.updated_at)
                    for row in db.execute(query)]


def counts(labels: Sequence[FlagLabel]) -> dict[str, tuple[int, int]]:
    """Per capability: (comments that hold one, comments that do not)."""
    return {name: (sum(l.value for l in labels if l.capability == name),
                   sum(not l.value for l in labels if l.capability == name)) for name in FLAGS}
