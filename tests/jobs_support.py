"""Helpers for job tests: a PostgreSQL database of the test's own, and driving a job with
the `openai` client against server processes that may be killed and restarted."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import psycopg

from .server_process import ServerProcess

POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL (trust auth), dropped afterwards; its URL."""
    name = f"classifier_jobs_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def api(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=2)


def requests_file(count: int) -> bytes:
    lines = [{"custom_id": f"c{k}", "method": "POST", "url": "/v1/classify",
              "body": {"texts": [f"comment number {k}"]}} for k in range(count)]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def submit(server: ServerProcess, count: int, **batch: Any) -> str:
    client = api(server)
    uploaded = client.files.create(file=("in.jsonl", requests_file(count)), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="24h",
                                 **batch).id


def wait(server: ServerProcess, batch_id: str, until: Any, timeout: float = 180.0) -> Any:
    """Poll until `until(batch)` holds; returns the batch."""
    client, deadline = api(server), time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if until(batch):
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status}: {batch.request_counts}"
        time.sleep(0.1)


def finished(batch: Any) -> bool:
    return batch.status in ("completed", "failed", "expired", "cancelled")


def answers(server: ServerProcess, file_id: str) -> dict[str, dict]:
    """custom_id -> the /classify response body, without what differs run to run; asserts each id once."""
    lines = [json.loads(line) for line in api(server).files.content(file_id).text.splitlines()]
    ids = [line["custom_id"] for line in lines]
    assert len(ids) == len(set(ids)), "a custom_id appears twice in the output"
    return {line["custom_id"]: {k: v for k, v in line["response"]["body"].items() if k != "processing_time"}
            for line in lines}
