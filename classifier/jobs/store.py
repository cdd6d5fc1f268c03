"""The jobs' durable state: batches, their lines and the chunks workers claim (files: `file_store`).

SQLAlchemy Core over SQLite (the default, a file in the data folder) or PostgreSQL
(`--database-url`), so one code path serves one process or many. File contents live on
disk under the data folder; the database holds their metadata and every line's request
and result.

Nothing is lost on a crash: a chunk's results, its `done` mark and the batch's counts are
written in one transaction, and only by the worker that still holds the chunk's lease; a
chunk whose worker died returns to the queue when its lease runs out. Claiming uses
`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, and on both databases the claim is an
UPDATE that only succeeds on a chunk still free, so two workers never hold one chunk.
Every method is blocking: the async callers run them in a thread.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlalchemy import Column, and_, create_engine, event, func, insert, inspect, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from . import outbox
from .file_store import FileStore, new_id
from .held import Claim, HeldChunks, Line, held, write_lines
from .tables import (SCHEMA_VERSION, STATE_TIMES, TERMINAL, batches, chunks, files, gold_labels, lines, meta, metadata,
                     turns)



class JobStore(FileStore, HeldChunks):
    def __init__(self, url: str, data_dir: Path) -> None:
        self.data_dir = data_dir
        (data_dir / "files").mkdir(parents=True, exist_ok=True)
        if url.startswith(("postgresql://", "postgres://")):  # the driver this project installs: psycopg 3
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        self.postgres = self.engine.dialect.name == "postgresql"
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        self.migrate()

    def migrate(self) -> None:
        """Create the tables (a first start), upgrade older ones, record the schema version; refuse a newer one."""
        with self.engine.begin() as db:
            found = db.scalar(select(func.max(meta.c.version))) if inspect(db).has_table(meta.name) else None
            if found is not None and found > SCHEMA_VERSION:
                raise RuntimeError(f"the jobs database has schema {found}; this version knows {SCHEMA_VERSION}: upgrade")
            if found == 2:
                _owned_labels(db)
            metadata.create_all(db)
            if found is None or found < SCHEMA_VERSION:  # create_all added the new tables
                db.execute(insert(meta).values(version=SCHEMA_VERSION))

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- batches

    def create_batch(self, owner: str, input_file_id: str, endpoint: str, window_seconds: int, window: str,
                     meta_data: dict[str, str], requests: Sequence[Line], chunk_size: int,
                     errors: list[dict] | None = None) -> dict:
        """A batch in_progress with its lines and chunks, or `failed` with `errors` (no lines)."""
        now = int(time.time())
        batch_id = new_id("batch_")
        row: dict[str, Any] = {
            "id": batch_id, "owner": owner, "endpoint": endpoint, "input_file_id": input_file_id,
            "completion_window": window, "metadata": json.dumps(meta_data), "created_at": now,
            "expires_at": now + window_seconds, "total": 0 if errors else len(requests), "completed": 0, "failed": 0,
            "webhook_attempts": "[]",
        }  # fmt: skip
        if errors:
            row |= {"status": "failed", "failed_at": now, "errors": json.dumps({"object": "list", "data": errors})}
        else:
            row |= {"status": "in_progress", "in_progress_at": now}
        with self.engine.begin() as db:
            db.execute(insert(batches).values(**row))
            if errors:  # failed at creation: its notice goes out like any other end's
                outbox.enqueue(db, batch_object(db.execute(select(batches).where(batches.c.id == batch_id))
                                                .mappings().one()))
            if not errors and requests:
                db.execute(insert(lines), [
                    {"batch_id": batch_id, "line_no": r.line_no, "chunk_no": k // chunk_size, "custom_id": r.custom_id,
                     "body": json.dumps(r.body)} for k, r in enumerate(requests)])  # fmt: skip
                db.execute(insert(chunks), [{"batch_id": batch_id, "chunk_no": c, "state": "pending"}
                                            for c in range((len(requests) + chunk_size - 1) // chunk_size)])
        return self.get_batch(owner, batch_id) or {}

    def get_batch(self, owner: str | None, batch_id: str) -> dict | None:
        """The batch object (owner None: whoever owns it, for the worker)."""
        query = select(batches).where(batches.c.id == batch_id)
        if owner is not None:
            query = query.where(batches.c.owner == owner)
        with self.engine.connect() as db:
            row = db.execute(query).mappings().first()
        return batch_object(row) if row else None

    def list_batches(self, owner: str, after: str | None, limit: int) -> tuple[list[dict], bool]:
        query = select(batches).where(batches.c.owner == owner)
        with self.engine.connect() as db:
            if after:
                anchor = db.execute(select(batches.c.created_at, batches.c.id).where(batches.c.id == after)).first()
                if anchor is not None:  # newest first, as OpenAI lists them
                    query = query.where(or_(batches.c.created_at < anchor.created_at,
                                            and_(batches.c.created_at == anchor.created_at, batches.c.id < anchor.id)))
            rows = db.execute(query.order_by(batches.c.created_at.desc(), batches.c.id.desc()).limit(limit + 1)).mappings()
            found = [batch_object(row) for row in rows]
        return found[:limit], len(found) > limit

    def queued_lines(self, owner: str) -> int:
        """Lines still to do in the owner's unfinished batches."""
        with self.engine.connect() as db:
            return db.scalar(select(func.coalesce(func.sum(batches.c.total - batches.c.completed - batches.c.failed), 0))
                             .where(batches.c.owner == owner, batches.c.status == "in_progress")) or 0

    def cancel(self, owner: str, batch_id: str) -> dict | None:
        """in_progress -> cancelling; the worker stops at the next chunk boundary."""
        with self.engine.begin() as db:
            db.execute(update(batches).where(batches.c.id == batch_id, batches.c.owner == owner,
                                             batches.c.status == "in_progress")
                       .values(status="cancelling", cancelling_at=int(time.time())))
        return self.get_batch(owner, batch_id)

    def results(self, batch_id: str) -> list[dict[str, Any]]:
        """The output lines done so far, in input order."""
        with self.engine.connect() as db:
            rows = db.execute(select(lines.c.output).where(lines.c.batch_id == batch_id, lines.c.output.is_not(None))
                              .order_by(lines.c.line_no))
            return [json.loads(row.output) for row in rows]

    def counts(self) -> dict[str, int]:
        """For /metrics: batches by status, chunks running, lines done and failed."""
        with self.engine.connect() as db:
            by_status = dict(db.execute(select(batches.c.status, func.count()).group_by(batches.c.status)).all())
            running = db.scalar(select(func.count()).select_from(chunks.join(batches, batches.c.id == chunks.c.batch_id))
                                .where(chunks.c.state == "running", batches.c.status.not_in(TERMINAL))) or 0
            done, failed = db.execute(select(func.coalesce(func.sum(batches.c.completed), 0),
                                             func.coalesce(func.sum(batches.c.failed), 0))).one()
        return {"queued": by_status.get("in_progress", 0), "running_chunks": running, "lines_done": done,
                "lines_failed": failed, **{f"status_{k}": v for k, v in by_status.items()}}  # fmt: skip

    def record_webhook(self, batch_id: str, attempt: dict[str, Any]) -> None:
        with self.engine.begin() as db:
            found = db.scalar(select(batches.c.webhook_attempts).where(batches.c.id == batch_id).with_for_update())
            db.execute(update(batches).where(batches.c.id == batch_id)
                       .values(webhook_attempts=json.dumps([*json.loads(found or "[]"), attempt])))

    # ----------------------------------------------------------------- the worker's side

    def claim(self, worker: str, lease_seconds: float) -> Claim | None:
        """Take a free chunk (pending, or whose lease ran out) of an in-progress batch: of the
        owner served longest ago (round-robin across API keys), its oldest batch's first."""
        now = time.time()
        free = or_(chunks.c.state == "pending", and_(chunks.c.state == "running", chunks.c.lease_until < now))
        query = (select(chunks.c.batch_id, chunks.c.chunk_no, batches.c.owner, batches.c.metadata)
                 .join(batches, batches.c.id == chunks.c.batch_id)
                 .outerjoin(turns, turns.c.owner == batches.c.owner)
                 .where(batches.c.status == "in_progress", free)
                 .order_by(func.coalesce(turns.c.served_at, 0.0), batches.c.created_at, chunks.c.chunk_no)
                 .limit(1))  # fmt: skip
        if self.postgres:
            query = query.with_for_update(of=chunks, skip_locked=True)
        with self.engine.begin() as db:
            found = db.execute(query).first()
            if found is None:
                return None
            taken = db.execute(update(chunks).where(chunks.c.batch_id == found.batch_id,
                                                    chunks.c.chunk_no == found.chunk_no, free)
                               .values(state="running", lease_owner=worker, lease_until=now + lease_seconds)).rowcount
            if not taken:  # another worker was faster
                return None
            served = (postgresql_insert if self.postgres else sqlite_insert)(turns).values(owner=found.owner,
                                                                                         served_at=now)
            db.execute(served.on_conflict_do_update(index_elements=[turns.c.owner], set_={"served_at": now}))
            rows = db.execute(select(lines.c.line_no, lines.c.custom_id, lines.c.body)
                              .where(lines.c.batch_id == found.batch_id, lines.c.chunk_no == found.chunk_no)
                              .order_by(lines.c.line_no)).all()
        return Claim(found.batch_id, found.chunk_no, found.owner,
                     tuple(Line(r.line_no, r.custom_id, json.loads(r.body)) for r in rows),
                     _owners(json.loads(found.metadata)))

    def extend(self, claim: Claim, worker: str, lease_seconds: float) -> bool:
        """Renew the lease while the chunk runs; False if it was lost."""
        with self.engine.begin() as db:
            return bool(db.execute(update(chunks).where(*held(claim, worker))
                                   .values(lease_until=time.time() + lease_seconds)).rowcount)

    def release(self, claim: Claim, worker: str) -> None:
        """Give a chunk back undone, for the next worker to take at once."""
        with self.engine.begin() as db:
            db.execute(update(chunks).where(*held(claim, worker)).values(state="pending", lease_owner=None,
                                                                           lease_until=None))

    def complete(self, claim: Claim, worker: str, outputs: dict[int, tuple[str | None, str | None]]) -> bool:
        """Store a chunk's lines (line_no -> (output line, error line)) and mark it done, in one
        transaction, only if this worker still holds it and the batch is still open. False:
        nothing written (the lease was lost, or the batch expired meanwhile)."""
        with self.engine.begin() as db:
            status = db.scalar(select(batches.c.status).where(batches.c.id == claim.batch_id).with_for_update())
            if status not in ("in_progress", "cancelling"):  # closed meanwhile (expired): its files are written
                return False
            if not db.execute(update(chunks).where(*held(claim, worker))
                              .values(state="done", lease_owner=None, lease_until=None, done_by=worker)).rowcount:
                return False
            write_lines(db, claim.batch_id, outputs)
        return True

    def _lines(self, batch_id: str, column: Column) -> Iterator[bytes]:
        """One column's lines of a batch, in input order, read from the database in pieces."""
        with self.engine.connect() as db:
            rows = db.execution_options(stream_results=True, yield_per=1000).execute(
                select(column).where(lines.c.batch_id == batch_id, column.is_not(None)).order_by(lines.c.line_no))
            for (line,) in rows:
                yield (line + "\n").encode()

    def to_finish(self, lease_seconds: float) -> list[tuple[str, str]]:
        """Batches some worker should close now, with the status they end in: in progress with
        every chunk done (completed), past their window (expired), cancelling with no chunk
        running (cancelled), or stuck in finalizing longer than a lease (its worker died)."""
        now = int(time.time())
        open_chunks = (select(func.count()).select_from(chunks)
                       .where(chunks.c.batch_id == batches.c.id, chunks.c.state != "done").scalar_subquery())
        running = (select(func.count()).select_from(chunks)
                   .where(chunks.c.batch_id == batches.c.id, chunks.c.state == "running",
                          chunks.c.lease_until >= time.time()).scalar_subquery())  # fmt: skip
        with self.engine.connect() as db:
            rows = db.execute(select(batches.c.id, batches.c.status, batches.c.expires_at, batches.c.finalizing_at,
                                     batches.c.metadata, open_chunks.label("open"), running.label("running"))
                              .where(batches.c.status.in_(("in_progress", "cancelling", "finalizing")))).all()
        found = []
        for row in rows:
            if row.status == "in_progress" and row.open == 0:
                found.append((row.id, "completed"))
            elif row.status == "in_progress" and row.expires_at <= now:
                found.append((row.id, "expired"))
            elif row.status == "cancelling" and row.running == 0:
                found.append((row.id, "cancelled"))
            elif row.status == "finalizing" and (row.finalizing_at or 0) + lease_seconds < now:
                found.append((row.id, json.loads(row.metadata).get("_final", "completed")))
        return found

    def begin_finalizing(self, batch_id: str, final: str, lease_seconds: float) -> bool:
        """Claim the closing of a batch (one worker wins); the final status is remembered."""
        now = int(time.time())
        with self.engine.begin() as db:
            row = db.execute(select(batches.c.status, batches.c.finalizing_at, batches.c.metadata)
                             .where(batches.c.id == batch_id)).first()
            if row is None:
                return False
            stale = row.status == "finalizing" and (row.finalizing_at or 0) + lease_seconds < now
            if row.status not in ("in_progress", "cancelling") and not stale:
                return False
            meta_data = {**json.loads(row.metadata), "_final": final}
            return bool(db.execute(update(batches).where(batches.c.id == batch_id, batches.c.status == row.status,
                                                         _same(batches.c.finalizing_at, row.finalizing_at))
                                   .values(status="finalizing", finalizing_at=now,
                                           metadata=json.dumps(meta_data))).rowcount)

    def finish(self, batch_id: str, final: str) -> dict:
        """Write the output and error files from the lines done, set the final status and
        queue the batch's webhook notice (`outbox`)."""
        with self.engine.connect() as db:
            owner = db.scalar(select(batches.c.owner).where(batches.c.id == batch_id))
        ids: dict[str, str | None] = {"output_file_id": None, "error_file_id": None}
        for key, column, suffix in (("output_file_id", lines.c.output, "output"), ("error_file_id", lines.c.error,
                                                                                 "errors")):
            file_id = f"file-{batch_id}-{suffix}"
            with self.engine.begin() as db:  # a redo after a crash replaces what it wrote
                db.execute(files.delete().where(files.c.id == file_id))
            stored = self.add_file(owner, f"{batch_id}_{suffix}.jsonl", "batch_output", self._lines(batch_id, column),
                                   file_id)
            if stored["bytes"]:
                ids[key] = file_id
            else:  # no line of this kind: no file
                self.delete_file(owner, file_id)
        with self.engine.begin() as db:
            meta_data = json.loads(db.scalar(select(batches.c.metadata).where(batches.c.id == batch_id)))
            meta_data.pop("_final", None)
            db.execute(update(batches).where(batches.c.id == batch_id)
                       .values(status=final, metadata=json.dumps(meta_data), **ids, **{STATE_TIMES[final]: int(time.time())}))
            ended = batch_object(db.execute(select(batches).where(batches.c.id == batch_id)).mappings().one())
            outbox.enqueue(db, ended)  # in the same transaction: the end and its notice, or neither
        return ended


def _owners(stored: dict[str, Any]) -> dict[str, str]:
    """A batch's metadata as its owner gave it, without the keys the service keeps there ("_...")."""
    return {k: v for k, v in stored.items() if not k.startswith("_")}


def _same(column: Column, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    """WAL lets readers work beside a writer; a busy timeout makes writers wait, not fail.
    The driver's own BEGIN is turned off: `_sqlite_begin_immediate` says when to begin."""
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    """Every transaction takes SQLite's write lock when it begins, not at its first write: two
    workers on one file then wait for each other (busy timeout) instead of one failing to
    upgrade a read lock (SQLITE_BUSY) halfway through claiming or completing a chunk."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def batch_object(row: Any) -> dict[str, Any]:
    """OpenAI's batch object, plus `webhook_attempts` and, for a distilled job, `distilled`
    (its phase and who answered how many comments: `HeldChunks.show_progress`)."""
    stored = json.loads(row["metadata"])
    meta_data = _owners(stored)
    return {
        "id": row["id"], "object": "batch", "endpoint": row["endpoint"], "errors": json.loads(row["errors"]) if row["errors"] else None,
        "input_file_id": row["input_file_id"], "completion_window": row["completion_window"], "status": row["status"],
        "output_file_id": row["output_file_id"], "error_file_id": row["error_file_id"], "created_at": row["created_at"],
        "expires_at": row["expires_at"], **{name: row[name] for name in STATE_TIMES.values()},
        "request_counts": {"total": row["total"], "completed": row["completed"], "failed": row["failed"]},
        "metadata": meta_data, "webhook_attempts": json.loads(row["webhook_attempts"]),
        **({"distilled": stored["_distilled"]} if "_distilled" in stored else {}),
    }  # fmt: skip



def _owned_labels(db) -> None:  # noqa: ANN001 - a SQLAlchemy connection in a transaction
    """Schema 2 -> 3: the gold table's key gains the owner (a label per owner and text). The rows
    are copied aside, the table made anew by `create_all`, and copied back; SQLite cannot alter a key."""
    columns = ", ".join(c.name for c in gold_labels.columns)
    db.exec_driver_sql("CREATE TABLE gold_labels_v2 AS SELECT * FROM gold_labels")
    db.exec_driver_sql("DROP TABLE gold_labels")
    gold_labels.create(db)
    db.exec_driver_sql(f"INSERT INTO gold_labels ({columns}) SELECT {columns} FROM gold_labels_v2")
    db.exec_driver_sql("DROP TABLE gold_labels_v2")
