"""Event-loop time the service spends per classified text as labels grow, and per admission
as waiting requesters grow: the work that holds up every other request of the process.

    .venv/bin/python -m bench.bench_event_loop --config configs/restaurants.json

Event-loop time is the CPU time of the thread running the loop (`time.thread_time`): the
embedding and the similarity search run in worker threads and are not counted, because they
hold up nobody else. The labels are random unit vectors on random stems of the taxonomy (the
embedding model is not timed here: `bench.bench_gold` times it); the LLM is scripted (it
names the first child at each node, so each text walks down a full branch).
"""
from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import click
import numpy as np

from classifier.gold import OPERATOR
from classifier.gold.knowledge import Knowledge
from classifier.llm.fairness import FairShare, Requester
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings
from classifier.taxonomy import Taxonomy, load_taxonomy
from tests.scripted import ScriptedProcessor

DIMENSIONS = 384


class RandomEmbedder:
    """Unit vectors from a seeded generator: the cost of the real model is not what is timed."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.rng.normal(size=(len(texts), DIMENSIONS)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def first_child(prompt, schema) -> dict:  # noqa: ANN001 - the scripted LLM
    topics = schema["properties"]["topics"]["items"]["enum"]
    return {"topics": [topics[0]]}


def knowledge(taxonomy: Taxonomy, labels: int) -> Knowledge | None:
    if not labels:
        return None
    leaves, rng = taxonomy.leaf_paths(), random.Random(0)
    stems = [frozenset(rng.sample(leaves, rng.randint(1, 2))) for _ in range(labels)]
    embedder = RandomEmbedder(1)
    return Knowledge(taxonomy, [f"labelled comment {k}" for k in range(labels)], stems,
                     embedder.embed([""] * labels), embedder)  # type: ignore[arg-type]


async def per_text(taxonomy: Taxonomy, labels: int, texts: int) -> float:
    """Milliseconds of event-loop time per text, classified one request of one text at a time."""
    known = knowledge(taxonomy, labels)
    service = ClassificationService(ScriptedProcessor(first_child), {taxonomy.name: taxonomy},
                                    ClassifierSettings(route="llm"),
                                    knowledge={(taxonomy.name, OPERATOR): known} if known else None)
    await service.classify(["warm-up"])
    started = time.thread_time()
    for k in range(texts):
        await service.classify([f"a new comment, number {k}"])
    return (time.thread_time() - started) / texts * 1000


async def per_admission(waiting: int, admissions: int = 4000) -> float:
    """Microseconds of event-loop time per place handed out (one place, `waiting` requesters
    each asking again as soon as served), task switches included."""
    share, handed, go = FairShare(1), 0, asyncio.Event()

    async def one(who: Requester) -> None:
        nonlocal handed
        await go.wait()
        while handed < admissions:
            async with share.place(who):
                handed += 1
                await asyncio.sleep(0)  # holds the place while the others queue

    tasks = [asyncio.create_task(one(Requester(f"r{k}"))) for k in range(waiting)]
    await asyncio.sleep(0)
    started = time.thread_time()
    go.set()
    await asyncio.gather(*tasks)
    return (time.thread_time() - started) / handed * 1e6


@click.command()
@click.option("--config", default="configs/restaurants.json", type=click.Path(exists=True, path_type=Path))
@click.option("--texts", default=50, show_default=True)
def main(config: Path, texts: int) -> None:
    taxonomy = load_taxonomy(config)
    print("| labels | event-loop ms per text |\n| ---: | ---: |")
    for labels in (0, 10_000, 100_000):
        print(f"| {labels:,} | {asyncio.run(per_text(taxonomy, labels, texts)):.2f} |", flush=True)
    print("\n| waiting requesters | event-loop us per admission |\n| ---: | ---: |")
    for waiting in (10, 2_000):
        print(f"| {waiting:,} | {asyncio.run(per_admission(waiting)):.1f} |", flush=True)


if __name__ == "__main__":
    main()
