"""The jobs database's tables (SQLite or PostgreSQL, one schema for both)."""
from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text

SCHEMA_VERSION = 3  # 2: gold_labels; 3: a label per owner (the owner in its key), flag_labels
TERMINAL = ("completed", "failed", "expired", "cancelled")
# The timestamp column of each state, as OpenAI's batch object names them.
STATE_TIMES = {"in_progress": "in_progress_at", "finalizing": "finalizing_at", "completed": "completed_at",
               "failed": "failed_at", "expired": "expired_at", "cancelling": "cancelling_at",
               "cancelled": "cancelled_at"}  # fmt: skip

metadata = MetaData()
meta = Table("job_schema", metadata, Column("version", Integer, primary_key=True))
files = Table(
    "job_files", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(32), nullable=False, index=True),
    Column("filename", Text, nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("created_at", Integer, nullable=False),
)  # fmt: skip
batches = Table(
    "job_batches", metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(32), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("endpoint", String(64), nullable=False),
    Column("input_file_id", String(64), nullable=False),
    Column("output_file_id", String(64)),
    Column("error_file_id", String(64)),
    Column("completion_window", String(16), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("errors", Text),
    Column("created_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=False),
    *(Column(name, Integer) for name in STATE_TIMES.values()),
    Column("total", Integer, nullable=False, default=0),
    Column("completed", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("webhook_attempts", Text, nullable=False, default="[]"),
)  # fmt: skip
lines = Table(
    "job_lines", metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("chunk_no", Integer, nullable=False),
    Column("custom_id", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("output", Text),  # the output file's line, once done
    Column("error", Text),  # the error file's line, if it failed
)  # fmt: skip
chunks = Table(
    "job_chunks", metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("chunk_no", Integer, primary_key=True),
    Column("state", String(16), nullable=False, index=True),  # pending | running | done
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("done_by", String(64)),  # the worker that committed it
)  # fmt: skip
# When each owner (API key) last had a chunk claimed: the next chunk goes to the owner
# served longest ago, so one key's huge batch never holds up another key's small one.
turns = Table(
    "job_owner_turns", metadata,
    Column("owner", String(32), primary_key=True),
    Column("served_at", Float, nullable=False),
)  # fmt: skip
# Webhook notices waiting to be delivered (`outbox`): written with the batch's end, sent by any worker.
webhooks = Table(
    "job_webhooks", metadata,
    Column("id", String(128), primary_key=True),  # the webhook-id, the same on every attempt
    Column("batch_id", String(64), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", Float, nullable=False),
    Column("state", String(16), nullable=False, index=True),  # pending | delivered | given_up
    Column("lease_until", Float),
)  # fmt: skip
# Labelled comments per taxonomy (gold, `classifier.gold`): one per text (case and spacing aside).
gold_labels = Table(
    "gold_labels", metadata,
    Column("taxonomy", String(128), primary_key=True),
    Column("owner", String(32), primary_key=True),  # whose label: an API key's digest, "" without keys, "cli" imported
    Column("text_key", String(64), primary_key=True),
    Column("text", Text, nullable=False),
    Column("stems", Text, nullable=False),  # JSON list of stems, "Food>Quality"
    Column("polarity", Text, nullable=False),  # JSON object, stem -> polarity
    Column("source", String(32), nullable=False),  # import | correction | label_studio
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False, index=True),
)  # fmt: skip
flag_labels = Table(
    "flag_labels", metadata,
    Column("owner", String(32), primary_key=True),  # as gold_labels' owner; flags belong to no taxonomy
    Column("capability", String(32), primary_key=True),  # alerts | recommendations | trend
    Column("text_key", String(64), primary_key=True),
    Column("text", Text, nullable=False),
    Column("value", Boolean, nullable=False),  # the comment holds one
    Column("detail", String(64)),  # alerts: the alert type, where given
    Column("source", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)  # fmt: skip
