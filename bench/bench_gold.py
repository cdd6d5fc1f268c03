"""What learning from gold costs without the LLM: training time, texts/s of embedding plus the
learned classifier's decisions (the learned route's whole work per text), and the memory the
embedding model and the classifiers add to a process that has already imported the service.

    .venv/bin/python -m bench.bench_gold --data ../shared/data/semeval16_restaurants_train.csv \
        --config configs/restaurants.json

The gold is every sentence outside the 200-sentence evaluation sample (seed 42); the timed
texts are that sample, classified several times over (warm model, batches of 64).
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
import numpy as np
import psutil

from classifier.eval.gold import load_semeval, sample
from classifier.eval.learning import draw_gold
from classifier.gold.embedder import Embedder
from classifier.gold.knowledge import build_knowledge
from classifier.hierarchy import HierarchicalClassifier
from classifier.settings import ClassifierSettings
from classifier.taxonomy import load_taxonomy


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rounds", default=5, help="Times the sample is classified.")
def main(data: Path, config: Path, rounds: int) -> None:
    import classifier.api.app  # noqa: F401 - what a server has imported before any gold
    taxonomy = load_taxonomy(config)
    examples = load_semeval(data)
    held = sample(examples, 200, 42)
    gold = draw_gold(data, "semeval", 0, 42, held)
    before = rss_mib()

    started = time.perf_counter()
    knowledge = build_knowledge(taxonomy, [e.text for e in gold], [e.stems for e in gold], Embedder(), "bench")
    built = time.perf_counter() - started
    texts = [e.text for e in held] * rounds
    started = time.perf_counter()
    vectors = knowledge.embedder.embed(texts)
    embedded = time.perf_counter() - started
    guidance = knowledge.guidance(texts, vectors, examples=0, route="learned")
    walker = HierarchicalClassifier(None, ClassifierSettings(route="learned"), guidance)  # type: ignore[arg-type]
    results = asyncio.run(walker.classify(texts, taxonomy))  # the learned route never calls the LLM
    total = time.perf_counter() - started
    after = rss_mib()

    assert all(not r.errors for r in results)
    print(f"gold: {len(gold)} sentences; embedded and trained in {built:.1f} s "
          f"({len(knowledge.model.models)} nodes modelled)")
    print(f"embedding: {len(texts) / embedded:.0f} texts/s; embedding + learned decisions: {len(texts) / total:.0f} "
          f"texts/s ({len(texts)} texts, {total:.2f} s)")
    print(f"memory: +{after - before:.0f} MiB RSS for the embedding model, {len(gold)} gold vectors "
          f"({np.asarray(knowledge.vectors).nbytes / 2**20:.1f} MiB) and the classifiers")


if __name__ == "__main__":
    main()
