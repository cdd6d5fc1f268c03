"""The distilled route's cost and its student's quality with a teacher that always answers
correctly (the scripted oracle from the tests, the file's gold), for several escalation shares.

What it isolates: how much of the LLM's work the learned models take over, and what the student
loses against a perfect teacher, with no LLM noise and no engine time. Prompts are counted per
comment; "LLM comment-equivalents" is the sample plus the answering phase's prompts divided by
the prompts a taught comment took, and its ratio to the file's size is the speed-up the route
can reach where prompts cost alike. The real engine's speed and quality: bench_distilled.

    .venv/bin/python -m bench.distilled_cost --data ../shared/data/semeval16_restaurants_train.csv \
        --config configs/restaurants.json
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import click

from classifier.distill.route import distill, shares
from classifier.eval.gold import LOADERS, excluding
from classifier.eval.metrics import level_scores
from classifier.gold.embedder import Embedder
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings, DistillSettings
from classifier.taxonomy import load_taxonomy, parse_stem
from tests.scripted import ScriptedProcessor, oracle

CAPABILITIES = ["classification", "stem_polarity"]


def one_run(examples, taxonomy, embedder: Embedder, settings: DistillSettings) -> str:  # noqa: ANN001 - eval Examples
    gold = {e.text: e.stems for e in examples}
    feelings = {e.text: e.polarity for e in examples}

    def polarity(prompt, schema):  # noqa: ANN001, ANN202 - a scripted answer
        given = feelings.get(prompt.comment, {})
        return {name: given.get(parse_stem(name), "Neutral") for name in schema["properties"]}

    processor = ScriptedProcessor(oracle(gold, polarity))
    service = ClassificationService(processor, {taxonomy.name: taxonomy}, ClassifierSettings(min_probability=0.0))
    rows = dict(enumerate((e.text for e in examples), start=1))
    results: dict[int, dict] = {}
    prompts: dict[str, int] = {}

    async def answer(chosen, phase, route):  # noqa: ANN001, ANN202
        before = sum(len(call.prompts) for call in processor.calls)
        for start in range(0, len(chosen), 64):
            part = chosen[start : start + 64]
            body = await service.classify([rows[r] for r in part], CAPABILITIES, route=route)
            results.update(zip(part, body["results"]))
        prompts[phase] = prompts.get(phase, 0) + sum(len(call.prompts) for call in processor.calls) - before

    report = asyncio.run(distill(service, embedder, taxonomy, rows, results, CAPABILITIES, settings, answer))
    taught = prompts["teaching"] / report.sampled
    equivalents = report.sampled + prompts["answering"] / taught
    rest = [k for k in rows if "source" in results[k]["classification_result"]]
    predicted = [frozenset(parse_stem(p)[1:] for p in results[k]["classification_result"]["classification_paths"])
                 for k in rest]
    truth = [gold[rows[k]] for k in rest]
    return (f"| {settings.escalate:.2f} | {report.sampled} | {shares(list(results.values()))['learned']} | "
            f"{taught:.2f} | {prompts['answering'] / max(1, len(rest)):.2f} | {equivalents:.0f} | "
            f"{len(rows) / equivalents:.1f} | {level_scores(predicted, truth, 1).micro.f1:.3f} | "
            f"{level_scores(predicted, truth, 2).micro.f1:.3f} |")


@click.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--kind", type=click.Choice(sorted(LOADERS)), default="semeval")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--exclude-sample", default=200, help="The eval's sample (seed 42), left out of the file.")
@click.option("--escalate", "shares_", multiple=True, type=float, default=[0.0, 0.1, 0.15, 0.2, 0.3])
@click.option("--distill-sample", default=0.0)
def main(data: Path, kind: str, config: Path, exclude_sample: int, shares_: tuple[float, ...],
         distill_sample: float) -> None:
    examples = excluding(LOADERS[kind](data), exclude_sample, 42)
    taxonomy, embedder = load_taxonomy(config), Embedder()
    print(f"{len(examples)} comments of {data.name}, {', '.join(CAPABILITIES)}, a teacher always right\n")
    print("| escalated share | sampled | answered without the LLM | prompts per taught comment | "
          "prompts per other comment | LLM comment-equivalents | x | L1 F1 (rest) | L2 F1 (rest) |")
    print("| --- " * 9 + "|")
    for share in shares_:
        print(one_run(examples, taxonomy, embedder, DistillSettings(sample=distill_sample, escalate=share)), flush=True)


if __name__ == "__main__":
    main()
