"""Gold in the jobs database (SQLite or PostgreSQL, same migrations): labels per taxonomy and
owner, one per comment text and owner, written idempotently (the same text again replaces
that owner's label).

Owners: an API key's digest (the labels its corrections gave), "" on a server without keys,
and `OPERATOR` for what the operator imported with `python -m classifier.gold`. What a key is
answered from, and sees, is its `view`: the operator's labels, with its own in place of any
for the same text; it never reads or changes another key's. Every method is blocking: async
callers run them in a thread."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from ..jobs.tables import gold_labels
from ..taxonomy import Taxonomy, format_path, parse_stem
from . import OPERATOR
from .labels import SOURCES, Label, LabelError


@dataclass(frozen=True)
class Stored:
    """A stored label with where it came from and when."""

    label: Label
    source: str
    owner: str
    created_at: float
    updated_at: float

    @property
    def shared(self) -> bool:
        """The operator's: every key is answered from it, none may change it over HTTP."""
        return self.owner == OPERATOR


class GoldStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine  # the jobs store's: its migrations made the table

    def put(self, taxonomy: str, labels: Iterable[Label], *, source: str, owner: str) -> tuple[int, int]:
        """Store `owner`'s labels (a text it labelled before gets the new label): (added, replaced)."""
        if source not in SOURCES:
            raise LabelError(f"unknown label source {source!r}; one of {', '.join(SOURCES)}")
        rows = {label.key: label for label in labels}  # the last label of a text wins
        if not rows:
            return 0, 0
        now = time.time()
        c = gold_labels.c
        with self.engine.begin() as db:
            known = set(db.scalars(select(c.text_key).where(c.taxonomy == taxonomy, c.owner == owner,
                                                            c.text_key.in_(list(rows)))))
            insert = postgresql_insert if db.dialect.name == "postgresql" else sqlite_insert
            for key, label in rows.items():
                values = {"text": label.text, "stems": json.dumps(sorted(format_path(None, s) for s in label.stems)),
                          "polarity": json.dumps({format_path(None, s): p for s, p in label.polarity.items()}),
                          "source": source, "updated_at": now}
                statement = insert(gold_labels).values(taxonomy=taxonomy, owner=owner, text_key=key, created_at=now,
                                                       **values)
                db.execute(statement.on_conflict_do_update(index_elements=[c.taxonomy, c.owner, c.text_key],
                                                           set_=values))
        return len(rows) - len(known), len(known)

    def labels(self, taxonomy: str, owner: str = OPERATOR, *, limit: int | None = None,
               after: str | None = None) -> list[Stored]:
        """`owner`'s own labels by id (`text_key`), from after `after`, at most `limit`."""
        return self._select(gold_labels.c.owner == owner, taxonomy, limit, after)

    def get(self, taxonomy: str, owner: str, key: str) -> Stored | None:
        """`owner`'s label of that id, if it has one."""
        c = gold_labels.c
        with self.engine.connect() as db:
            row = db.execute(select(gold_labels).where(c.taxonomy == taxonomy, c.owner == owner,
                                                       c.text_key == key)).first()
        return _stored(row) if row is not None else None

    def view(self, taxonomy: str, owner: str, *, limit: int | None = None, after: str | None = None) -> list[Stored]:
        """The labels `owner` is answered from, by id: its own, and the operator's for texts it
        has not labelled itself."""
        c = gold_labels.c
        if owner == OPERATOR:
            return self.labels(taxonomy, owner, limit=limit, after=after)
        own = select(c.text_key).where(c.taxonomy == taxonomy, c.owner == owner)
        return self._select(or_(c.owner == owner, and_(c.owner == OPERATOR, c.text_key.not_in(own))),
                            taxonomy, limit, after)

    def _select(self, whose, taxonomy: str, limit: int | None, after: str | None) -> list[Stored]:  # noqa: ANN001
        c = gold_labels.c
        query = select(gold_labels).where(c.taxonomy == taxonomy, whose).order_by(c.text_key)
        if after:
            query = query.where(c.text_key > after)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as db:
            return [_stored(row) for row in db.execute(query)]

    def count(self, taxonomy: str, owner: str) -> int:
        """How many labels `owner` has of its own in `taxonomy` (the quota counts them)."""
        c = gold_labels.c
        with self.engine.connect() as db:
            return db.scalar(select(func.count()).select_from(gold_labels).where(
                c.taxonomy == taxonomy, c.owner == owner)) or 0

    def owners(self, taxonomy: str) -> list[str]:
        """Every owner with labels of its own in `taxonomy`."""
        c = gold_labels.c
        with self.engine.connect() as db:
            return sorted(db.scalars(select(c.owner).where(c.taxonomy == taxonomy).distinct()))

    def delete(self, taxonomy: str, key: str, owner: str = OPERATOR) -> bool:
        """Delete `owner`'s label of that id; False when it has none."""
        c = gold_labels.c
        with self.engine.begin() as db:
            return db.execute(delete(gold_labels).where(c.taxonomy == taxonomy, c.owner == owner,
                                                        c.text_key == key)).rowcount > 0


def _stored(row) -> Stored:  # noqa: ANN001 - a SQLAlchemy row
    stems = frozenset(parse_stem(s) for s in json.loads(row.stems))
    polarity = {parse_stem(s): p for s, p in json.loads(row.polarity).items()}
    return Stored(Label(row.text, stems, polarity), row.source, row.owner, row.created_at, row.updated_at)


def usable(stored: Sequence[Stored], taxonomy: Taxonomy) -> list[Stored]:
    """The labels whose every stem the taxonomy (as loaded now) still has."""
    return [s for s in stored if all(taxonomy.is_complete_stem(stem) for stem in s.label.stems)]
