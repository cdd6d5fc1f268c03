"""A chunk under lease: its lines written as they are answered, and the phase a distilled job is in.

An ordinary chunk is written whole when it is done (`JobStore.complete`). A distilled job is one
chunk answered in phases (`classifier.distill`): its lines are kept as each phase answers them,
so a worker that dies loses none of what the LLM answered, and the next worker reads them back
(`kept`) and asks only for the rest. What the job is doing shows in the batch object's
`distilled` field, kept under the hidden metadata key `_distilled`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from .tables import batches, chunks, lines

Outputs = dict[int, tuple["str | None", "str | None"]]  # line_no -> (output line, error line)


@dataclass(frozen=True)
class Line:
    """One request of a batch: its number in the input (1 = first), custom_id and /classify body."""

    line_no: int
    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """A chunk a worker holds under lease, with its lines."""

    batch_id: str
    chunk_no: int
    owner: str  # the batch's owner (API key digest)
    lines: tuple[Line, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)  # the batch's, as its owner gave it

    @property
    def route(self) -> str | None:
        """The route the batch's metadata names ("distilled"), if any."""
        return self.metadata.get("route")


def held(claim: Claim, worker: str) -> Iterable[Any]:
    """The condition that `worker` still holds the claimed chunk."""
    return (chunks.c.batch_id == claim.batch_id, chunks.c.chunk_no == claim.chunk_no, chunks.c.state == "running",
            chunks.c.lease_owner == worker)


def write_lines(db: Connection, batch_id: str, outputs: Outputs) -> None:
    """Store lines' outputs and count them in the batch, inside the caller's transaction. A line
    written before (a distilled job's failed line answered again) moves between the counts."""
    before = db.execute(select(lines.c.output, lines.c.error)
                        .where(lines.c.batch_id == batch_id, lines.c.line_no.in_(list(outputs)))).all()
    failed = sum(error is not None for _, error in outputs.values()) - sum(row.error is not None for row in before)
    completed = len(outputs) - sum(error is not None for _, error in outputs.values()) - sum(
        row.output is not None for row in before)
    for line_no, (output, error) in outputs.items():
        db.execute(update(lines).where(lines.c.batch_id == batch_id, lines.c.line_no == line_no)
                   .values(output=output, error=error))
    db.execute(update(batches).where(batches.c.id == batch_id)
               .values(completed=batches.c.completed + completed, failed=batches.c.failed + failed))


class HeldChunks:
    """The store's side of a chunk answered in phases (mixed into `JobStore`)."""

    engine: Engine

    def keep(self, claim: Claim, worker: str, outputs: Outputs) -> bool:
        """Store some of a held chunk's lines now, if the lease is still held and the batch open.
        True: go on; False: stop (the lease was lost, or the batch was cancelled, which keeps
        these lines, or it expired, which writes nothing more)."""
        with self.engine.begin() as db:
            status = db.scalar(select(batches.c.status).where(batches.c.id == claim.batch_id).with_for_update())
            if status not in ("in_progress", "cancelling"):
                return False
            if db.scalar(select(chunks.c.chunk_no).where(*held(claim, worker))) is None:
                return False
            write_lines(db, claim.batch_id, outputs)
        return status == "in_progress"

    def kept(self, claim: Claim) -> Outputs:
        """The claimed chunk's lines stored already (by `keep`, before a crash)."""
        with self.engine.connect() as db:
            rows = db.execute(select(lines.c.line_no, lines.c.output, lines.c.error)
                              .where(lines.c.batch_id == claim.batch_id, lines.c.chunk_no == claim.chunk_no,
                                     (lines.c.output.is_not(None)) | (lines.c.error.is_not(None)))).all()
        return {row.line_no: (row.output, row.error) for row in rows}

    def show_progress(self, batch_id: str, progress: dict[str, Any]) -> None:
        """Say in the batch object what a distilled job is doing (`distilled`: phase, detail, shares)."""
        with self.engine.begin() as db:
            found = db.scalar(select(batches.c.metadata).where(batches.c.id == batch_id).with_for_update())
            if found is not None:
                db.execute(update(batches).where(batches.c.id == batch_id)
                           .values(metadata=json.dumps({**json.loads(found), "_distilled": progress})))
