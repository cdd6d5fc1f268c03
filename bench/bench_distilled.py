"""The distilled route against the LLM alone, as a customer runs them: `batch_classify.py`.

    .venv/bin/python -m bench.bench_distilled --data ../shared/data/semeval16_restaurants_train.csv \
        --config configs/restaurants.json --llm-rows 300

The file: every sentence of --data outside the eval's sample (`--sample`, seed 42) plus the
report half of that sample (what `python -m classifier.eval --part report` scores), shuffled.
The distilled run answers all of it; the LLM-only run (`--route llm`) answers the report half
and the first other sentences up to `--llm-rows` (its rate is steady, so it is measured on a
part). Both on the same machine, one after the other, with the same capabilities. Quality is
scored on the report half: level-1 and level-2 micro F1 against the file's gold, and, for each
flag, how many sentences each run flagged and how far the distilled run agrees with the LLM
alone (F1 with the LLM's decisions as the reference: review sentences carry no flag gold).
"""
from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import click

from classifier.cli import flag_calibrations
from classifier.distill.route import shares
from classifier.distill.silver import read_silver, taught
from classifier.gold.embedder import Embedder
from classifier.hierarchy import HierarchicalClassifier
from classifier.settings import ClassifierSettings
from classifier.taxonomy import Taxonomy, load_taxonomy
from classifier.eval.gold import LOADERS, excluding, part, sample
from classifier.eval.metrics import level_scores
from classifier.taxonomy import parse_stem  # noqa: I001

ROOT = Path(__file__).resolve().parent.parent
CAPABILITIES = ("classification", "stem_polarity", "alerts", "recommendations")
FLAGS = {"alerts": "has_alerts", "recommendations": "has_recommendations"}


def write_csv(path: Path, texts: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text"], *[[text] for text in texts]])


def run(name: str, texts: list[str], out: Path, config: Path, extra: list[str],
        again: bool = True) -> tuple[dict[str, dict], float, str]:
    """One batch_classify.py run: its results by text, its seconds classifying, its phases. Not
    `again`: the results, log and seconds an earlier run left in `out` (to score them anew)."""
    source, output, log = out / f"{name}.csv", out / f"{name}.jsonl", out / f"{name}.log"
    if again:
        write_csv(source, texts)
        flags = [f"--enable-{c.replace('_', '-')}" for c in CAPABILITIES]
        command = [sys.executable, str(ROOT / "batch_classify.py"), "--config", str(config), "--input-file",
                   str(source), "--save-path", str(output), "--no-resume", *flags, *extra]
        began = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
        if done.returncode:
            raise click.ClickException(f"{name} run failed:\n{done.stderr[-3000:]}")
        log.write_text(done.stderr + done.stdout)
        print(f"{name}: {len(texts)} comments in {time.monotonic() - began:.0f} s, engine start included", flush=True)
    said = log.read_text()
    seconds = float(re.search(r"seconds classifying\s*│\s*([\d.]+)", said).group(1))
    results = {r["text"]: r for r in map(json.loads, output.read_text().splitlines())}
    phases = [line for line in said.splitlines() if line.startswith(("teaching", "training", "answering"))]
    return results, seconds, " ".join(phases)


def student_alone(sampled: list[dict], report, alone: dict[str, dict], taxonomy: Taxonomy) -> None:  # noqa: ANN001
    """Issue 23, item 3, offline: the learned models alone on the report half, taught by all the
    sample's answers or only those the LLM was sure of (`--distill-labels`), no LLM call."""
    embedder = Embedder()
    thresholds = {name: flag.min_probability for name, flag in flag_calibrations(None).items()}
    texts = [e.text for e in report]
    vectors = embedder.embed(texts)
    truth = [e.stems for e in report]
    for labels in ("all", "sure"):
        silver = read_silver(sampled, embedder.embed([r["text"] for r in sampled]), taxonomy, None, CAPABILITIES,
                             sure_only=labels == "sure", thresholds=thresholds)
        knowledge, flags = taught(silver, taxonomy, embedder, thresholds)
        guidance = knowledge.guidance(texts, vectors, examples=0, route="learned")
        walker = HierarchicalClassifier(None, ClassifierSettings(route="learned"), guidance)  # type: ignore[arg-type]
        predicted = [frozenset(r.accepted) for r in asyncio.run(walker.classify(texts, taxonomy))]
        line = (f"student alone, labels {labels} ({sum(s is not None for s in silver.stems)} topic labels): "
                f"L1 {level_scores(predicted, truth, 1).micro.f1:.3f} L2 {level_scores(predicted, truth, 2).micro.f1:.3f}")
        for capability in FLAGS:
            model = flags.models.get(capability) if flags else None
            if model is None:
                line += f"; {capability}: no model"
                continue
            said = [v is not None and v.passed for v in model.verdicts(capability, texts, vectors, "learned")]
            reference = [flagged(alone[t], capability) for t in texts]
            both = sum(a and b for a, b in zip(said, reference))
            line += f"; {capability} agreement F1 {2 * both / max(1, sum(said) + sum(reference)):.3f}"
        print(line)


def stems(result: dict) -> frozenset:
    return frozenset(parse_stem(p)[1:] for p in result.get("classification_result", {}).get("classification_paths", ()))


def flagged(result: dict, capability: str) -> bool:
    return bool(result.get(capability, {}).get(FLAGS[capability]))


@click.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--kind", type=click.Choice(sorted(LOADERS)), default="semeval")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--sample", "size", default=200, help="The eval's sample, whose report half is scored.")
@click.option("--seed", default=42)
@click.option("--llm-rows", default=300, help="Comments the LLM-only run answers (the report half first).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/bench_distilled"))
@click.option("--distill-option", "distill_options", multiple=True,
              help="Passed on to the distilled run, e.g. --distill-option=--distill-sample=300.")
@click.option("--rerun", multiple=True, type=click.Choice(("distilled", "llm", "none")), default=("distilled", "llm"),
              help="The runs to make anew; the others are read from --out as an earlier call left them "
                   "(--rerun none: score them only).")
def main(data: Path, kind: str, config: Path, size: int, seed: int, llm_rows: int, out: Path,
         distill_options: tuple[str, ...], rerun: tuple[str, ...]) -> None:
    examples = LOADERS[kind](data)
    report = part(sample(examples, size, seed), "report")
    others = excluding(examples, size, seed)
    texts = [e.text for e in report + others]
    random.Random(seed).shuffle(texts)
    out.mkdir(parents=True, exist_ok=True)
    distilled, distilled_seconds, said = run("distilled", texts, out, config, ["--route", "distilled", *distill_options],
                                             again="distilled" in rerun)
    alone, alone_seconds, _ = run("llm", [e.text for e in report] + [e.text for e in others][: llm_rows - len(report)],
                                  out, config, ["--route", "llm"], again="llm" in rerun)
    print(said)
    truth = [e.stems for e in report]
    rates = {"distilled": len(distilled) / distilled_seconds, "llm": len(alone) / alone_seconds}
    print(f"\n{len(texts)} comments; report half {len(report)}; "
          f"answered without the LLM (distilled): {shares(list(distilled.values()))['learned']} of {len(distilled)}\n")
    print("| route | comments | s classifying | texts/s | x LLM | L1 F1 | L2 F1 | " +
          " | ".join(f"{c} flagged" for c in FLAGS) + " | polarity right (stems found) |")
    print("| --- " * (8 + len(FLAGS)) + "|")
    for name, results, seconds in (("llm", alone, alone_seconds), ("distilled", distilled, distilled_seconds)):
        predicted = [stems(results[e.text]) for e in report]
        counts = " | ".join(str(sum(flagged(results[e.text], c) for e in report)) for c in FLAGS)
        judged = [(e.polarity[stem], results[e.text].get("stem_polarity", {}).get(">".join(stem), {}).get("polarity"))
                  for e in report for stem in e.polarity]
        found = [(truth_, said) for truth_, said in judged if said is not None]
        print(f"| {name} | {len(results)} | {seconds:.0f} | {rates[name]:.2f} | {rates[name] / rates['llm']:.1f} | "
              f"{level_scores(predicted, truth, 1).micro.f1:.3f} | {level_scores(predicted, truth, 2).micro.f1:.3f} | "
              f"{counts} | {sum(t == p for t, p in found) / max(1, len(found)):.3f} ({len(found)}) |")
    for capability in FLAGS:
        reference = {e.text for e in report if flagged(alone[e.text], capability)}
        mine = {e.text for e in report if flagged(distilled[e.text], capability)}
        agreement = 2 * len(reference & mine) / max(1, len(reference) + len(mine))
        print(f"{capability}: distilled agrees with the LLM alone at F1 {agreement:.3f} "
              f"({len(reference & mine)} both, {len(reference - mine)} LLM only, {len(mine - reference)} distilled only)")
    sampled = [r for r in distilled.values() if "source" not in r.get("classification_result", {})]
    student_alone(sampled, report, alone, load_taxonomy(config))


if __name__ == "__main__":
    main()
