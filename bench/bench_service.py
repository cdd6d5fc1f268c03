"""The service's own overhead: POST /classify over a zero-latency scripted processor.

The processor answers every prompt at once (the oracle from the tests, walking the
training taxonomy to a leaf), so what is measured is everything but the LLM: HTTP,
validation, the request batcher, the taxonomy walk, prompt building, JSON out.
A local load generator (raw keep-alive HTTP/1.1 connections, or httpx in process) keeps
`--concurrency` requests in flight and reports requests/s, texts/s, milliseconds per text
(wall time / texts) and request latency.

    .venv/bin/python -m bench.bench_service                    # uvicorn on 127.0.0.1, client in this process
    .venv/bin/python -m bench.bench_service --transport asgi   # in-process, no sockets
"""
from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import click
import httpx
import orjson
import uvicorn

from classifier.api import FixedBackend, create_app
from classifier.settings import ServerSettings, Settings
from classifier.taxonomy import load_taxonomy
from fastapi import FastAPI
from tests.engine_server import free_port
from tests.scripted import ScriptedProcessor, oracle

ROOT = Path(__file__).resolve().parent.parent
DISTINCT_TEXTS = 500


def _texts() -> list[str]:
    return [f"Comment {i}: the trainer went too fast and the room was cold" for i in range(DISTINCT_TEXTS)]


def build_app(batch_timeout: float) -> FastAPI:
    """The real app over a processor that answers instantly and correctly."""
    tree = load_taxonomy(ROOT / "configs" / "topics.json")
    leaves = tree.leaf_paths()
    gold = {text: [leaves[i % len(leaves)]] for i, text in enumerate(_texts())}
    settings = Settings(server=ServerSettings(batch_timeout=batch_timeout))
    return create_app(settings, {"topics": tree}, FixedBackend(ScriptedProcessor(oracle(gold))))


def _serve(port: int, batch_timeout: float) -> None:
    uvicorn.run(build_app(batch_timeout), host="127.0.0.1", port=port, log_level="warning")


@dataclass
class Result:
    size: int
    requests: int
    seconds: float
    latencies: list[float]

    def line(self) -> str:
        texts = self.requests * self.size
        p50, p99 = (statistics.quantiles(self.latencies, n=100)[k] * 1000 for k in (49, 98))
        return (f"{self.size:>3} texts/request: {self.requests / self.seconds:8.1f} requests/s  "
                f"{texts / self.seconds:8.1f} texts/s  {self.seconds * 1000 / texts:6.3f} ms/text  "
                f"latency p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")


Post = Callable[[bytes], Awaitable[tuple[int, bytes]]]


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client, one connection per worker. httpx spends ~4 ms of
    CPU per request under concurrency, which would measure the load generator, not the server."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def connect(self) -> Post:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"

        async def post(body: bytes) -> tuple[int, bytes]:
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status_line, *headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            length = next(int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:"))
            return int(status_line.split()[1]), await reader.readexactly(length)

        return post


class InProcess:
    """httpx over the ASGI transport: the app in this process, no sockets."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def connect(self) -> Post:
        async def post(body: bytes) -> tuple[int, bytes]:
            response = await self.client.post("/classify", content=body, headers={"content-type": "application/json"})
            return response.status_code, response.content

        return post


async def load(transport: RawHTTP | InProcess, size: int, requests: int, concurrency: int) -> Result:
    """`requests` POSTs of `size` texts each, `concurrency` at a time; every answer checked."""
    texts = _texts()
    latencies: list[float] = []
    queue = iter(range(requests))

    async def worker() -> None:
        post = await transport.connect()
        for k in queue:
            body = orjson.dumps({"texts": [texts[(k * size + j) % len(texts)] for j in range(size)]})
            sent = time.perf_counter()
            status, answer = await post(body)
            latencies.append(time.perf_counter() - sent)
            results = orjson.loads(answer)["results"]
            assert status == 200 and len(results) == size, answer[:500]
            assert all(r["classification_result"]["classification_paths"] for r in results), results

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(size, requests, time.perf_counter() - started, latencies)


async def run(transport: RawHTTP | InProcess, sizes: dict[int, int], concurrency: int) -> None:
    await load(transport, 1, 50, concurrency)  # warm-up
    for size, requests in sizes.items():
        print((await load(transport, size, requests, concurrency)).line(), flush=True)


@click.command()
@click.option("--transport", type=click.Choice(["http", "asgi"]), default="http", show_default=True,
              help="http: uvicorn in a child process on 127.0.0.1; asgi: the app in this process.")
@click.option("--concurrency", default=32, show_default=True, help="Requests in flight.")
@click.option("--batch-timeout", default=ServerSettings.batch_timeout, show_default=True)
@click.option("--requests-1", default=2000, show_default=True, help="Requests of 1 text.")
@click.option("--requests-50", default=200, show_default=True, help="Requests of 50 texts.")
def main(transport: str, concurrency: int, batch_timeout: float, requests_1: int, requests_50: int) -> None:
    sizes = {1: requests_1, 50: requests_50}
    print(f"transport {transport}, concurrency {concurrency}, batch timeout {batch_timeout} s")
    if transport == "asgi":
        app = build_app(batch_timeout)

        async def in_process() -> None:
            async with app.router.lifespan_context(app):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
                    await run(InProcess(client), sizes, concurrency)

        asyncio.run(in_process())
        return
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port, batch_timeout), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        asyncio.run(run(RawHTTP(port), sizes, concurrency))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
