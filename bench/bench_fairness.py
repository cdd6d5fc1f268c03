"""Fairness between API keys and between jobs and live requests: with key A's big job
running, how long key B's small job takes (in chunk-times of A's job), and whether live
/classify requests sent meanwhile ever get 503. One server process, one stand-in LLM server.

    .venv/bin/python -m bench.bench_fairness                       # A: 20,000 lines, B: 10 lines
    .venv/bin/python -m bench.bench_fairness --a-lines 5000 --delay 0.01
"""
from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter

import click
import httpx
import openai

from tests.fault_server import FaultServer, schema_answer
from tests.jobs_support import requests_file
from tests.server_process import ServerProcess


def _submit(server: ServerProcess, key: str, lines: int) -> tuple[openai.OpenAI, str]:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=2)
    uploaded = client.files.create(file=("in.jsonl", requests_file(lines)), purpose="batch")
    return client, client.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify",
                                         completion_window="24h").id


def _done(client: openai.OpenAI, batch_id: str) -> int:
    counts = client.batches.retrieve(batch_id).request_counts
    return counts.completed + counts.failed


@click.command()
@click.option("--a-lines", default=20_000, show_default=True)
@click.option("--b-lines", default=10, show_default=True)
@click.option("--delay", default=0.02, show_default=True, help="Seconds the stand-in LLM takes per answer.")
@click.option("--chunk-size", default=64, show_default=True)
def main(a_lines: int, b_lines: int, delay: float, chunk_size: int) -> None:
    with FaultServer(models=["m"], answer=schema_answer, delay=delay) as llm, ServerProcess([
        "--backend", "vllm-server", "--vllm-server-url", llm.url, "--data-dir", tempfile.mkdtemp(prefix="bench-fair-"),
        "--job-chunk-size", str(chunk_size), "--api-key", "key-a", "--api-key", "key-b", "--max-queued-texts", "200",
        "--max-texts", "100",
    ]) as server:  # fmt: skip
        a_client, a_batch = _submit(server, "key-a", a_lines)
        while _done(a_client, a_batch) < 2 * chunk_size:  # A is running
            time.sleep(0.2)
        started, first = time.perf_counter(), _done(a_client, a_batch)
        time.sleep(5)
        chunk_seconds = chunk_size / ((_done(a_client, a_batch) - first) / (time.perf_counter() - started))

        statuses: Counter[int] = Counter()
        stop = threading.Event()

        def live() -> None:
            with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer key-a"}, timeout=60) as http:
                while not stop.is_set():
                    statuses[http.post("/classify", json={"texts": ["a live comment"]}).status_code] += 1

        thread = threading.Thread(target=live)
        thread.start()
        b_client, b_batch = _submit(server, "key-b", b_lines)
        began = time.perf_counter()
        while b_client.batches.retrieve(b_batch).status != "completed":
            time.sleep(0.05)
        b_seconds = time.perf_counter() - began
        a_done = _done(a_client, a_batch)
        stop.set()
        thread.join()
        if a_client.batches.retrieve(a_batch).status == "in_progress":
            a_client.batches.cancel(a_batch)
    print(f"A: {a_lines} lines in chunks of {chunk_size}, one chunk every {chunk_seconds:.2f} s")
    print(f"B: {b_lines} lines submitted while A ran, completed in {b_seconds:.2f} s = "
          f"{b_seconds / chunk_seconds:.2f} chunk-times of A; A had {a_done} of {a_lines} lines done by then")
    print(f"live /classify meanwhile: {dict(statuses)} (503s: {statuses[503]})")


if __name__ == "__main__":
    main()
