"""Lines per second through a classification job against the same lines through POST
/classify, on one server process and one stand-in LLM server (a fixed delay per answer,
the answer a function of the prompt), alternating the two arms so drift on a shared
machine hits both. The job arm counts from batch creation to `completed` (upload,
validation, chunk claims and commits, output file included); the /classify arm keeps
`--concurrency` one-line requests in flight, as a client looping over a file would.

    .venv/bin/python -m bench.bench_jobs                       # 600 lines, 3 rounds
    .venv/bin/python -m bench.bench_jobs --lines 2000 --delay 0.05
"""
from __future__ import annotations

import asyncio
import statistics
import tempfile
import time

import click
import httpx

from tests.fault_server import FaultServer, schema_answer
from tests.jobs_support import finished, submit, wait
from tests.server_process import ServerProcess


async def _classify_all(url: str, lines: int, concurrency: int) -> float:
    """Seconds for `lines` one-text requests with `concurrency` in flight."""
    queue = list(range(lines))

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            k = queue.pop()
            response = await http.post(f"{url}/classify", json={"texts": [f"comment number {k}"]})
            response.raise_for_status()

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return time.perf_counter() - started


def _job(server: ServerProcess, lines: int) -> float:
    started = time.perf_counter()
    batch = wait(server, submit(server, lines), finished, timeout=3600)
    assert batch.status == "completed" and batch.request_counts.completed == lines, batch
    return time.perf_counter() - started


@click.command()
@click.option("--lines", default=600, show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--delay", default=0.02, show_default=True, help="Seconds the stand-in LLM takes per answer.")
@click.option("--concurrency", default=64, show_default=True, help="/classify requests in flight.")
@click.option("--chunk-size", default=64, show_default=True)
def main(lines: int, rounds: int, delay: float, concurrency: int, chunk_size: int) -> None:
    with FaultServer(models=["m"], answer=schema_answer, delay=delay) as llm, ServerProcess([
        "--backend", "vllm-server", "--vllm-server-url", llm.url, "--data-dir", tempfile.mkdtemp(prefix="bench-jobs-"),
        "--job-chunk-size", str(chunk_size), "--max-concurrent", "256",
    ]) as server:  # fmt: skip
        ratios = []
        for round_ in range(1, rounds + 1):
            direct = asyncio.run(_classify_all(server.url, lines, concurrency))
            job = _job(server, lines)
            ratios.append(direct / job)
            print(f"round {round_}: /classify {lines / direct:.1f} lines/s, job {lines / job:.1f} lines/s, "
                  f"job/classify {direct / job:.3f}")
        print(f"median job/classify throughput ratio {statistics.median(ratios):.3f} over {rounds} rounds "
              f"({lines} lines, stand-in delay {delay:g} s, chunk size {chunk_size}, /classify concurrency {concurrency})")


if __name__ == "__main__":
    main()
