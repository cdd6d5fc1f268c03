"""Does LocalVLLMProcessor cost throughput? It against one plain `LLM.generate` call.

Both arms run the same classification-shaped prompts as bench.bench_server (6 restaurant
topics with definitions as the shared system message, one SemEval sentence last, an
array of enum labels as the schema, max_tokens 40) on the same engine settings
(`llm_args` of the default EngineSettings, structured outputs, temperature 0, seed 42),
each engine in its own spawned process with the same environment. The processor adds
the worker pipe, the token count that guards the context window, and the schema check;
the target is >= 0.95x plain.

One engine at a time (two would share the cores): each cycle starts a fresh engine per
arm (so both begin with an empty prefix cache), warms it up on other sentences, times
the prompts in one batch, and stops it. Arms alternate order from cycle to cycle, so a
machine whose load drifts favours neither.

    .venv/bin/python -m bench.bench_local [--prompts 200] [--cycles 2]
"""
from __future__ import annotations

import asyncio
import csv
import json
import multiprocessing
import os
import statistics
import time
from multiprocessing.connection import Connection
from pathlib import Path

import click

from bench.bench_server import INSTRUCTIONS, MAX_TOKENS, SCHEMA
from classifier.llm.base import Prompt
from classifier.llm.embedded import SMOLLM2_135M, resolve_llm
from classifier.llm.local import LocalVLLMProcessor, llm_args, worker_env
from classifier.settings import EngineSettings

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 16  # prompts run before timing: first batches are slower (allocations, grammar)
Run = tuple[float, float, list[object]]  # engine start s, prompts/s, parsed outputs


def load_prompts(path: Path, count: int) -> tuple[list[Prompt], list[Prompt]]:
    """Warm-up prompts and the timed ones, from different sentences."""
    with path.open(newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    prompts = [Prompt(INSTRUCTIONS, t) for t in texts[: WARM_UP + count]]
    return prompts[:WARM_UP], prompts[WARM_UP:]


async def processor_arm(settings: EngineSettings, warm: list[Prompt], timed: list[Prompt]) -> Run:
    processor = LocalVLLMProcessor(settings)
    began = time.perf_counter()
    await processor.start()
    started_in = time.perf_counter() - began
    try:
        await processor.process_with_schema(warm, SCHEMA, max_tokens=MAX_TOKENS)
        began = time.perf_counter()
        results = await processor.process_with_schema(timed, SCHEMA, max_tokens=MAX_TOKENS)
        seconds = time.perf_counter() - began
    finally:
        await processor.close()
    invalid = sum(not r.ok for r in results)
    rate = len(timed) / seconds
    print(f"  processor {rate:6.2f} prompts/s ({seconds:.1f} s, {invalid} invalid)", flush=True)
    return started_in, rate, [r.value for r in results]


def plain_arm(
    conn: Connection, settings: EngineSettings, model: str, warm: list[Prompt], timed: list[Prompt]
) -> None:
    """The baseline, in a spawned process like the processor's worker: chat-rendered
    texts (rendered before the clock starts) and one `LLM.generate`, nothing else."""
    os.environ.update(worker_env(None))
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    began = time.perf_counter()
    llm = LLM(**llm_args(settings, model, None))
    started_in = time.perf_counter() - began
    tokenizer = llm.get_tokenizer()
    sampling = SamplingParams(
        temperature=settings.temperature,
        seed=settings.seed,
        max_tokens=MAX_TOKENS,
        structured_outputs=StructuredOutputsParams(json=SCHEMA),
    )

    def render(prompts: list[Prompt]) -> list[str]:
        return [
            tokenizer.apply_chat_template(p.messages(), tokenize=False, add_generation_prompt=True)
            for p in prompts
        ]

    llm.generate(render(warm), sampling, use_tqdm=False)
    texts = render(timed)
    began = time.perf_counter()
    outputs = llm.generate(texts, sampling, use_tqdm=False)
    seconds = time.perf_counter() - began
    print(f"  plain     {len(timed) / seconds:6.2f} prompts/s ({seconds:.1f} s)", flush=True)
    conn.send((started_in, len(timed) / seconds, [_parsed(o.outputs[0].text) for o in outputs]))


def _parsed(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def run_plain(settings: EngineSettings, model: str, warm: list[Prompt], timed: list[Prompt]) -> Run:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=plain_arm, args=(child, settings, model, warm, timed))
    process.start()
    child.close()
    try:
        return parent.recv()
    finally:
        process.join()


@click.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path),
              default=ROOT.parent / "shared" / "data" / "semeval16_restaurants_train.csv", show_default=True)
@click.option("--prompts", "count", default=200, show_default=True)
@click.option("--cycles", default=2, show_default=True, help="each cycle runs both arms, order alternating")
def main(data: Path, count: int, cycles: int) -> None:
    settings = EngineSettings(llm=SMOLLM2_135M.name)  # the model of docs/benchmarks.md
    model = resolve_llm(settings.llm, settings.cache_dir)
    warm, timed = load_prompts(data, count)
    print(f"{len(timed)} prompts after {len(warm)} warm-up, {cycles} cycles; "
          f"load average {os.getloadavg()[0]:.2f}; engine {llm_args(settings, model, None)}")
    arms = {
        "processor": lambda: asyncio.run(processor_arm(settings, warm, timed)),
        "plain": lambda: run_plain(settings, model, warm, timed),
    }
    runs: dict[str, list[Run]] = {name: [] for name in arms}
    order = list(arms)
    for cycle in range(cycles):
        print(f"cycle {cycle + 1}")
        for name in order:
            runs[name].append(arms[name]())
        order.reverse()
    starts = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
    rates = {name: statistics.median(r[1] for r in rs) for name, rs in runs.items()}
    same = sum(a == b for a, b in zip(runs["processor"][0][2], runs["plain"][0][2]))
    print(f"engine start (median): processor {starts['processor']:.1f} s (spawn, import vLLM, load), "
          f"plain LLM() {starts['plain']:.1f} s (vLLM already imported)")
    print(f"same outputs in both arms: {same}/{len(timed)}")
    print(f"median prompts/s: processor {rates['processor']:.2f}, plain {rates['plain']:.2f}; "
          f"ratio {rates['processor'] / rates['plain']:.3f} (target >= 0.95); "
          f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
