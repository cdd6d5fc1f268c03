"""The learned route with the packaged encoder against one tuned on the gold, no LLM: what
tuning buys where the learned models decide alone, and what it costs.

    .venv/bin/python -m bench.bench_tuning --data ../shared/data/semeval16_restaurants_train.csv \
        --kind semeval --config configs/restaurants.json
    .venv/bin/python -m bench.bench_tuning --data ../shared/data/semeval19_suggestions_train.csv \
        --kind suggestions --sample 400

The evaluation texts are the report half of the eval's sample (`--sample`, seed 42), as
`python -m classifier.eval --part report` draws them; the gold is drawn from every other text
of the file (`--gold-size`, 0: all), as the eval's `--gold` draws it. Topics are scored at
each level's learned accept threshold (the learned route), flags at theirs.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from classifier.eval.gold import LOADERS, part, sample
from classifier.eval.learning import draw_gold, gold_embedder
from classifier.eval.metrics import exact_path_accuracy, level_scores
from classifier.gold.embedder import Embedder
from classifier.gold.flag_labels import FLAGS, from_flags
from classifier.gold.flag_models import flag_model
from classifier.gold.knowledge import build_knowledge
from classifier.hierarchy import HierarchicalClassifier
from classifier.settings import ClassifierSettings
from classifier.taxonomy import Taxonomy, load_taxonomy


def topic_scores(gold, held, taxonomy: Taxonomy, embedder: Embedder) -> str:  # noqa: ANN001 - eval Examples
    knowledge = build_knowledge(taxonomy, [e.text for e in gold], [e.stems for e in gold], embedder, "bench")
    texts = [e.text for e in held]
    guidance = knowledge.guidance(texts, embedder.embed(texts), examples=0, route="learned")
    walker = HierarchicalClassifier(None, ClassifierSettings(route="learned"), guidance)  # type: ignore[arg-type]
    results = asyncio.run(walker.classify(texts, taxonomy))
    predicted = [frozenset(r.accepted) for r in results]
    truth = [e.stems for e in held]
    stems = [frozenset(p for p in r.accepted if taxonomy.is_complete_stem(p)) for r in results]
    return (f"L1 {level_scores(predicted, truth, 1).micro.f1:.3f}  L2 {level_scores(predicted, truth, 2).micro.f1:.3f}"
            f"  exact {exact_path_accuracy(stems, truth):.3f}")


def flag_scores(gold, held, embedder: Embedder) -> str:  # noqa: ANN001 - eval Examples
    labels = [label for e in gold for label in from_flags(e.text, e.flags)]
    parts = []
    for name in FLAGS:
        mine = [label for label in labels if label.capability == name]
        scored = [e for e in held if name in e.flags]
        if not mine or not scored:
            continue
        model = flag_model(name, mine, embedder)
        verdicts = model.verdicts(name, [e.text for e in scored], embedder.embed([e.text for e in scored]), "learned")
        tp = sum(bool(v and v.passed) and e.flags[name] for v, e in zip(verdicts, scored))
        flagged = sum(bool(v and v.passed) for v in verdicts)
        positives = sum(e.flags[name] for e in scored)
        p, r = tp / max(1, flagged), tp / max(1, positives)
        parts.append(f"{name}: P {p:.3f} R {r:.3f} F1 {2 * p * r / max(1e-9, p + r):.3f}")
    return "  ".join(parts)


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", required=True, type=click.Choice(sorted(LOADERS)))
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--sample", "size", default=200, show_default=True)
@click.option("--gold-size", default=0, show_default=True, help="Gold drawn; 0 takes every text outside the sample.")
def main(data: Path, kind: str, config: Path | None, size: int, gold_size: int) -> None:
    examples = LOADERS[kind](data)
    drawn = sample(examples, size, 42)
    held = part(drawn, "report")
    gold = draw_gold(data, kind, gold_size, 42, drawn)
    taxonomy = load_taxonomy(config) if config else None
    print(f"{len(gold)} gold texts, {len(held)} report-half texts")
    for tune in (False, True):
        started = time.perf_counter()
        embedder, record = gold_embedder(gold, taxonomy, tune)
        seconds = time.perf_counter() - started
        scores = topic_scores(gold, held, taxonomy, embedder) if taxonomy else flag_scores(gold, held, embedder)
        kept = "" if record is None else (f" (tuning {record['seconds']} s, {record['steps']} steps; "
                                          f"{'kept' if record['kept'] else 'not kept'}: held-back AP "
                                          f"{record['tuned']} tuned, {record['frozen']} frozen)")
        print(f"{'tuned' if tune else 'frozen'}: {scores}  [{seconds:.0f} s]{kept}", flush=True)


if __name__ == "__main__":
    main()
