"""Retention: what jobs leave behind is deleted after `--retention-days`, so the disk and the
database cannot only grow. A batch that ended before the cutoff goes with its lines, chunks,
notices, output and error files and what was made from it; an uploaded file older than the
cutoff goes unless a batch still running reads it.
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import delete, func, or_, select

from .store import JobStore
from .tables import TERMINAL, batches, chunks, files, lines, webhooks

logger = logging.getLogger(__name__)


def purge(store: JobStore, older_than_days: float) -> tuple[int, int]:
    """Delete what ended (batches) or was made (files) more than `older_than_days` ago; the
    number of batches and files deleted."""
    cutoff = int(time.time() - older_than_days * 86400)
    ended_at = func.coalesce(batches.c.completed_at, batches.c.failed_at, batches.c.expired_at, batches.c.cancelled_at)
    with store.engine.begin() as db:
        old = db.execute(select(batches.c.id, batches.c.owner)
                         .where(batches.c.status.in_(TERMINAL), ended_at < cutoff)).all()
        ids = [row.id for row in old]
        for table, column in ((lines, lines.c.batch_id), (chunks, chunks.c.batch_id), (webhooks, webhooks.c.batch_id)):
            db.execute(delete(table).where(column.in_(ids)))
        db.execute(delete(batches).where(batches.c.id.in_(ids)))
        in_use = select(batches.c.input_file_id).where(batches.c.status.not_in(TERMINAL))
        stale = db.execute(select(files.c.id).where(
            files.c.created_at < cutoff,
            or_(files.c.purpose == "batch_output", files.c.id.not_in(in_use)))).scalars().all()
        db.execute(delete(files).where(files.c.id.in_(stale)))
    for file_id in stale:
        store.file_path(file_id).unlink(missing_ok=True)
    for batch_id in ids:
        for made in store.data_dir.glob(f"derived/{batch_id}.*"):
            made.unlink(missing_ok=True)
    if ids or stale:
        logger.info("retention: deleted %d batches and %d files older than %g days", len(ids), len(stale),
                    older_than_days)
    return len(ids), len(stale)
