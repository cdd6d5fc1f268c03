"""Does one comment wait for someone else's file? Latency under load and throughput of the
default server (local backend, the reading model), through its HTTP API only, so the same
script measures any commit: copy it into a checkout of that commit and run it there.

It prints four figures:
1. one text (`classification`) alone, then the same text sent while a 60-text request runs
   (the ratio is the target: <= 1.5x);
2. one comment with `classification,stem_polarity,alerts,recommendations`, alone;
3. throughput: 200 restaurant sentences, `classification,stem_polarity`, one request.

    .venv/bin/python -m bench.bench_latency
    .venv/bin/python -m bench.bench_latency --backend vllm-server --llm smollm2-135m   # a real `vllm serve`
    .venv/bin/python -m bench.bench_latency --backend vllm-server --engine-arg=--scheduling-policy --engine-arg=priority

Run it on a quiet machine; the figures of one run are comparable with each other, and with
another commit's only when run back to back.
"""
from __future__ import annotations

import csv
import statistics
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import click
import httpx

from tests.server_process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "semeval16_restaurants_train.csv"
SINGLE = "The waiter was rude to us."
FOUR = "classification,stem_polarity,alerts,recommendations"
FOUR_COMMENTS = ("The trainer was late every morning and the room was far too cold.",
                 "Please send the slides before the course; the exercises were the best part.",
                 "A colleague kept making remarks about my accent during lunch.")


def sentences(data: Path, count: int, skip: int = 0) -> list[str]:
    with data.open(newline="") as f:
        rows = [row["text"] for row in csv.DictReader(f)]
    return rows[skip : skip + count]


def classify(client: httpx.Client, texts: list[str], capabilities: str, taxonomy: str | None = None) -> float:
    """Seconds one request takes; raises if any text came back with an error."""
    body: dict = {"texts": texts, "capabilities": capabilities.split(",")}
    if taxonomy:
        body["taxonomy"] = taxonomy
    began = time.perf_counter()
    response = client.post("/classify", json=body)
    elapsed = time.perf_counter() - began
    response.raise_for_status()
    failed = [r["error"] for r in response.json()["results"] if r.get("error")]
    if failed:
        raise SystemExit(f"{len(failed)} texts failed, the first: {failed[0]}")
    return elapsed


def under_load(client: httpx.Client, texts: list[str], after: float) -> tuple[float, float]:
    """(the single text's seconds, the load's seconds): the single text is sent `after` s
    into a request of `texts`."""
    took: dict[str, float] = {}
    thread = threading.Thread(target=lambda: took.__setitem__("load", classify(client, texts, "classification")))
    thread.start()
    time.sleep(after)
    single = classify(client, [SINGLE], "classification")
    thread.join()
    return single, took["load"]


@click.command()
@click.option("--backend", type=click.Choice(["local", "vllm-server"]), default="local", show_default=True)
@click.option("--llm", default=None, help="The model (default: the server's default).")
@click.option("--load", default=60, show_default=True, help="Texts in the request the single text meets.")
@click.option("--throughput-texts", default=200, show_default=True)
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=DATA,
              show_default=True, help="SemEval restaurant sentences (for a checkout outside the project's folder).")
@click.option("--server-arg", "server_args", multiple=True, metavar="ARG",
              help="One more argument for classifier_server.py (repeat): --server-arg=--max-running --server-arg=8.")
@click.option("--engine-arg", "engine_args", multiple=True, metavar="ARG",
              help="One more argument for `vllm serve` (--backend vllm-server; repeat).")
@click.option("--repeat", default=3, show_default=True, help="Times the single text is timed alone.")
def main(backend: str, llm: str | None, load: int, throughput_texts: int, data: Path, server_args: tuple[str, ...],
         engine_args: tuple[str, ...], repeat: int) -> None:
    args = ["--config", "configs/topics.json", "--taxonomy", "restaurants=configs/restaurants.json",
            "--max-texts", "2000", "--no-jobs", "--backend", backend, *server_args]
    with ExitStack() as stack:
        if backend == "vllm-server":
            from classifier.llm.embedded import resolve_llm
            from classifier.settings import DEFAULT_CACHE_DIR
            from tests.engine_server import EngineServer

            engine = stack.enter_context(EngineServer(resolve_llm(llm or "smollm2-135m", DEFAULT_CACHE_DIR),
                                                      extra_args=engine_args))
            args += ["--vllm-server-url", engine.url]
        elif llm:
            args += ["--llm", llm]
        server = stack.enter_context(ServerProcess(args, start_timeout=900))
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=3600))
        classify(client, sentences(data, 4), "classification")  # warm: compile, the shared prefixes cached
        alone = [classify(client, [SINGLE], "classification") for _ in range(repeat)]
        single, loaded = under_load(client, sentences(data, load, skip=500), after=3.0)
        print(f"one text alone: median {statistics.median(alone):.2f} s ({', '.join(f'{t:.2f}' for t in alone)})")
        print(f"one text sent 3 s into a {load}-text request: {single:.2f} s "
              f"({single / statistics.median(alone):.1f}x alone); the {load}-text request took {loaded:.1f} s")
        four = [classify(client, [comment], FOUR) for comment in FOUR_COMMENTS]
        print(f"one comment, {FOUR}: {', '.join(f'{t:.1f}' for t in four)} s (sum {sum(four):.1f} s)")
        texts = sentences(data, throughput_texts, skip=1000)
        took = classify(client, texts, "classification,stem_polarity", taxonomy="restaurants")
        print(f"throughput: {len(texts)} restaurant sentences, classification,stem_polarity, one request: "
              f"{took:.1f} s, {len(texts) / took:.2f} texts/s")


if __name__ == "__main__":
    main()
