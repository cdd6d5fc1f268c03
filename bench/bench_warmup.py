"""Does the first comment pay for everyone's prompts? One comment alone on a fresh default server
(local backend, the reading model, `configs/topics.json`, classification only), without and with
the start's warm-up of the prefix cache.

Per run it prints: seconds until the port answers, the lone comment sent at once (cold, or
while the warm-up runs), and with the warm-up its duration and the same comment after it.

    .venv/bin/python -m bench.bench_warmup
    .venv/bin/python -m bench.bench_warmup --llm smollm2-135m   # the fast model
"""
from __future__ import annotations

import time

import click
import httpx

from bench.bench_latency import classify
from tests.server_process import ServerProcess

COMMENT = "The waiter was rude to us and the soup was cold."


def until_warm(client: httpx.Client) -> dict:
    while not (warm := client.get("/health").json()["detail"]["warm_up"])["done"]:
        time.sleep(0.5)
    return warm


@click.command()
@click.option("--llm", default=None, help="The model (default: the server's default).")
def main(llm: str | None) -> None:
    args = ["--config", "configs/topics.json", "--no-jobs", *(["--llm", llm] if llm else [])]
    for warm_up in (False, True):
        began = time.perf_counter()
        with ServerProcess([*args, "--warm-up" if warm_up else "--no-warm-up"], start_timeout=900) as server, \
                httpx.Client(base_url=server.url, timeout=3600) as client:
            up = time.perf_counter() - began
            first = classify(client, [COMMENT], "classification")
            line = f"warm-up {'on ' if warm_up else 'off'}: port answered after {up:.1f} s; the comment at once: {first:.2f} s"
            if warm_up:
                warm = until_warm(client)
                again = classify(client, [COMMENT + " "], "classification")  # not the same text: no twin
                line += (f"; warm-up: {warm['prompts']} prompts in {warm['seconds']:.1f} s, "
                         f"{warm['failed']} failed; a comment after it: {again:.2f} s")
            print(line, flush=True)


if __name__ == "__main__":
    main()
