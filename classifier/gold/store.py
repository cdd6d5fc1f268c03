"""Gold in the jobs database (SQLite or PostgreSQL, same migrations): labels per taxonomy,
one per comment text, written idempotently (the same text again replaces its label).
Every method is blocking: async callers run them in a thread."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from ..jobs.tables import gold_labels
from ..taxonomy import Taxonomy, format_path, parse_stem
from .labels import SOURCES, Label, LabelError


@dataclass(frozen=True)
class Stored:
    """A stored label with where it came from and when."""

    label: Label
    source: str
    owner: str
    created_at: float
    updated_at: float


class GoldStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine  # the jobs store's: its migrations made the table

    def put(self, taxonomy: str, labels: Iterable[Label], *, source: str, owner: str) -> tuple[int, int]:
        """Store labels (a text already labelled gets the new label): (added, replaced)."""
        if source not in SOURCES:
            raise LabelError(f"unknown label source {source!r}; one of {', '.join(SOURCES)}")
        rows = {label.key: label for label in labels}  # the last label of a text wins
        if not rows:
            return 0, 0
        now = time.time()
        with self.engine.begin() as db:
            known = set(db.scalars(select(gold_labels.c.text_key).where(
                gold_labels.c.taxonomy == taxonomy, gold_labels.c.text_key.in_(list(rows)))))
            insert = postgresql_insert if db.dialect.name == "postgresql" else sqlite_insert
            for key, label in rows.items():
                values = {"text": label.text, "stems": json.dumps(sorted(format_path(None, s) for s in label.stems)),
                          "polarity": json.dumps({format_path(None, s): p for s, p in label.polarity.items()}),
                          "source": source, "owner": owner, "updated_at": now}
                statement = insert(gold_labels).values(taxonomy=taxonomy, text_key=key, created_at=now, **values)
                db.execute(statement.on_conflict_do_update(
                    index_elements=[gold_labels.c.taxonomy, gold_labels.c.text_key], set_=values))
        return len(rows) - len(known), len(known)

    def labels(self, taxonomy: str, *, limit: int | None = None, after: str | None = None) -> list[Stored]:
        """The taxonomy's labels by id (`text_key`), from after `after`, at most `limit`."""
        query = select(gold_labels).where(gold_labels.c.taxonomy == taxonomy).order_by(gold_labels.c.text_key)
        if after:
            query = query.where(gold_labels.c.text_key > after)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as db:
            return [_stored(row) for row in db.execute(query)]

    def delete(self, taxonomy: str, key: str) -> bool:
        with self.engine.begin() as db:
            return db.execute(delete(gold_labels).where(gold_labels.c.taxonomy == taxonomy,
                                                        gold_labels.c.text_key == key)).rowcount > 0

    def changed_since(self, taxonomy: str, when: float) -> int:
        """How many labels were added or replaced after `when` (retraining counts them)."""
        with self.engine.connect() as db:
            return db.scalar(select(func.count()).select_from(gold_labels).where(
                gold_labels.c.taxonomy == taxonomy, gold_labels.c.updated_at > when)) or 0


def _stored(row) -> Stored:  # noqa: ANN001 - a SQLAlchemy row
    stems = frozenset(parse_stem(s) for s in json.loads(row.stems))
    polarity = {parse_stem(s): p for s, p in json.loads(row.polarity).items()}
    return Stored(Label(row.text, stems, polarity), row.source, row.owner, row.created_at, row.updated_at)


def usable(stored: Sequence[Stored], taxonomy: Taxonomy) -> list[Label]:
    """The labels whose every stem the taxonomy (as loaded now) still has."""
    return [s.label for s in stored if all(taxonomy.is_complete_stem(stem) for stem in s.label.stems)]
