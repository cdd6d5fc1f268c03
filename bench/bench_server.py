"""Does VLLMServerProcessor cost throughput? It against plain concurrent AsyncOpenAI calls.

Both arms send the same classification-shaped requests (6 restaurant topics with
definitions as the shared system message, one SemEval sentence last, an array of enum
labels as the schema, max_tokens 40) with the same concurrency, to the same server, in
alternating order, several rounds. The processor adds retries, balancing and schema
checks; the target is at least 0.95x the plain calls' prompts/s. The client's own CPU
time per prompt shows that overhead without the noise of a shared machine.

    .venv/bin/python -m bench.bench_server               # starts a server with the default model
    .venv/bin/python -m bench.bench_server --url http://127.0.0.1:8000/v1

A server this script starts runs in vLLM's dev mode so every run can begin with an empty
prefix cache; against --url the cache is reset only if that server allows it.
"""
from __future__ import annotations

import asyncio
import csv
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import click
import httpx
import openai

from classifier.llm.base import JSONSchema, Prompt
from classifier.llm.embedded import SMOLLM2_135M, resolve_llm
from classifier.llm.server import VLLMServerProcessor, chat_request, normalise_url
from classifier.settings import DEFAULT_CACHE_DIR, EngineSettings
from tests.engine_server import EngineServer

ROOT = Path(__file__).resolve().parent.parent
TOPICS = {
    "food": "The dishes: taste, quality, freshness, portions, menu choice.",
    "drinks": "Beverages: wine, beer, cocktails, coffee, their choice and quality.",
    "service": "The staff: friendliness, attentiveness, speed, professionalism.",
    "ambience": "The place's atmosphere: decor, noise, music, comfort, crowding.",
    "location": "Where the restaurant is: neighbourhood, view, access, parking.",
    "restaurant": "The restaurant as a whole: overall verdict, prices, value, reputation.",
}
INSTRUCTIONS = (
    "You classify one restaurant review sentence into topics. The topics:\n"
    + "\n".join(f"- {name}: {definition}" for name, definition in TOPICS.items())
    + "\nAnswer with JSON: the list of topics the sentence is about, most relevant first."
)
SCHEMA: JSONSchema = {
    "type": "object",
    "properties": {
        "topics": {"type": "array", "items": {"enum": list(TOPICS)}, "minItems": 1, "maxItems": 3}
    },
    "required": ["topics"],
}
MAX_TOKENS = 40


def load_prompts(path: Path, count: int) -> list[Prompt]:
    with path.open(newline="") as f:
        return [Prompt(INSTRUCTIONS, row["text"]) for row, _ in zip(csv.DictReader(f), range(count))]


async def processor_arm(processor: VLLMServerProcessor, prompts: list[Prompt]) -> int:
    """Returns how many items came back valid."""
    results = await processor.process_with_schema(prompts, SCHEMA, max_tokens=MAX_TOKENS)
    return sum(r.ok for r in results)


async def plain_arm(client: openai.AsyncOpenAI, model: str, prompts: list[Prompt], concurrency: int) -> int:
    """The baseline: asyncio.gather of the same requests under a semaphore, nothing else."""
    slots = asyncio.Semaphore(concurrency)
    settings = EngineSettings()

    async def one(prompt: Prompt) -> bool:
        request = chat_request(
            model, prompt, SCHEMA, max_tokens=MAX_TOKENS, temperature=settings.temperature, seed=settings.seed
        )
        async with slots:
            response = await client.chat.completions.create(**request)
        return bool(response.choices[0].message.content)

    return sum(await asyncio.gather(*(one(p) for p in prompts)))


async def reset_prefix_cache(url: str) -> bool:
    """Empty the server's prefix cache so each run starts as cold as the first (dev mode only)."""
    async with httpx.AsyncClient() as http:
        response = await http.post(url.removesuffix("/v1") + "/reset_prefix_cache", timeout=30)
    return response.status_code == 200 and response.json().get("success", False)


async def bench(url: str, prompts: list[Prompt], concurrency: int, rounds: int) -> None:
    settings = EngineSettings(backend="vllm-server", server_urls=(url,), max_concurrent=concurrency)
    async with VLLMServerProcessor(settings) as processor:
        client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=settings.request_timeout)
        arms: dict[str, Callable[[], Awaitable[int]]] = {
            "processor": lambda: processor_arm(processor, prompts),
            "plain": lambda: plain_arm(client, processor.model, prompts, concurrency),
        }
        print(f"warm-up (compiles the grammar, fills the workers' caches): {await arms['plain']()} answers")
        rates: dict[str, list[float]] = {name: [] for name in arms}
        order = list(arms)
        for round_ in range(rounds):
            for name in order:
                cold = await reset_prefix_cache(url)
                began, cpu_began = time.perf_counter(), time.process_time()
                valid = await arms[name]()
                seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
                rates[name].append(len(prompts) / seconds)
                print(
                    f"round {round_ + 1} {name:<9} {rates[name][-1]:6.2f} prompts/s  ({seconds:5.1f} s, "
                    f"client CPU {cpu * 1000 / len(prompts):.2f} ms/prompt, {valid}/{len(prompts)} valid, "
                    f"prefix cache {'reset' if cold else 'kept'})"
                )
            order.reverse()
        await client.close()
        usage = processor.usage
        print(f"processor usage: {usage.llm_calls} calls, {usage.errors} errors, "
              f"{usage.prompt_tokens / usage.llm_calls:.0f} prompt and "
              f"{usage.completion_tokens / usage.llm_calls:.1f} completion tokens per call")
    # Within a round both arms see the same machine; a ratio per round cancels the drift
    # (other load on a shared machine) that comparing all runs of one arm with all of the other would not.
    ratios = [p / b for p, b in zip(rates["processor"], rates["plain"])]
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"median prompts/s: processor {median['processor']:.2f}, plain {median['plain']:.2f}")
    print(f"ratio per round: {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.3f} (target >= 0.95)")


@click.command()
@click.option("--url", help="an OpenAI-compatible server; default: start one with the embedded model")
@click.option("--data", type=click.Path(exists=True, path_type=Path),
              default=ROOT.parent / "shared" / "data" / "semeval16_restaurants_train.csv", show_default=True)
@click.option("--prompts", "count", default=200, show_default=True)
@click.option("--concurrency", default=32, show_default=True)
@click.option("--rounds", default=4, show_default=True, help="each round runs both arms, order alternating")
def main(url: str | None, data: Path, count: int, concurrency: int, rounds: int) -> None:
    prompts = load_prompts(data, count)
    with ExitStack() as stack:
        if url is None:
            model = Path(resolve_llm(SMOLLM2_135M.name, DEFAULT_CACHE_DIR))  # the model of docs/benchmarks.md
            server = stack.enter_context(EngineServer(model, env={"VLLM_SERVER_DEV_MODE": "1"}))
            print(f"vLLM server with {model.name} answered after {server.started_in:.1f} s")
            url = server.url
        print(f"{len(prompts)} prompts, concurrency {concurrency}, {rounds} rounds, {normalise_url(url)}")
        asyncio.run(bench(normalise_url(url), prompts, concurrency, rounds))


if __name__ == "__main__":
    main()
