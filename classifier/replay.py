"""Run a sample of a batch run's answers again, as it was run, and say how many match.

    python -m classifier.replay OUTPUT [--sample 50] [--seed 42]

OUTPUT is what `batch_classify.py` wrote; its journal (`OUTPUT.journal.jsonl`) records every
setting that changes an answer, the weights' digest, the engine's version and sampling, and
the command line. The replay draws `--sample` answered comments, runs the same command on
them alone (same flags; a new input and output in a temporary folder), and compares each
answer with the recorded one: identical (every field), or the same decisions (topic paths,
each stem's polarity, each flag) with some probability or wording moved. Where the replay's
own record differs from the original's (other weights, another vLLM), it says so first.
"""
from __future__ import annotations

import csv
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from .batch.journal import read_journal
from .capabilities import CAPABILITIES
from .gold.flag_labels import FLAGS

ROOT = Path(__file__).resolve().parent.parent
# The batch command's options that name this run's files; the replay gives its own.
OWN_FILES = ("--input-file", "--input-column", "--save-path", "--output-dir", "--output-format", "--report")
NOT_RECORDED = ("input", "input_column", "run")  # header keys that differ by design between the two runs


def replay_arguments(arguments: list[str], source: Path, output: Path) -> list[str]:
    """The recorded command line on another input and output, starting over."""
    kept, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
            continue
        name = argument.split("=", 1)[0]
        if name in OWN_FILES:
            skip = "=" not in argument
            continue
        if name in ("--resume", "--no-resume"):
            continue
        kept.append(argument)
    return [*kept, "--input-file", str(source), "--input-column", "text", "--save-path", str(output), "--no-resume"]


def decisions(result: dict[str, Any]) -> dict[str, Any]:
    """What a result decided: its topic paths, each stem's polarity, and each capability's flag."""
    said: dict[str, Any] = {"error": "error" in result}
    classification = result.get("classification_result")
    if classification is not None:
        said["paths"] = sorted(classification.get("classification_paths", ()))
    said["polarity"] = {stem: value.get("polarity") for stem, value in result.get("stem_polarity", {}).items()}
    for name in FLAGS:
        capability = CAPABILITIES[name]
        value = result.get(capability.result_key)
        if value:
            said[name] = bool(value[capability.details.flag])  # type: ignore[attr-defined]
    return said


@click.command()
@click.argument("output", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sample", "size", type=click.IntRange(1), default=50, show_default=True,
              help="Answered comments to run again.")
@click.option("--seed", default=42, show_default=True, help="Which comments are drawn.")
def main(output: Path, size: int, seed: int) -> None:
    """Run a sample of OUTPUT's answers again with the recorded settings and count the matches."""
    journal = output.with_name(output.name + ".journal.jsonl")
    if not journal.exists():
        raise click.ClickException(f"{journal} is not there: replay reads the journal batch_classify.py writes "
                                   "beside its output")
    header, results = read_journal(journal)
    run = header.get("run") or {}
    if "arguments" not in run:
        raise click.ClickException(f"{journal} records no command line (written before replays were recorded): "
                                   "run the batch again to record one")
    if "distilled" in header:
        raise click.ClickException("a distilled run's learned answers depend on its whole file and its sample, not on "
                                   "each comment: replay a --route llm or cascade run")
    answered = sorted(row for row, result in results.items() if "error" not in result and "skipped" not in result)
    rows = sorted(random.Random(seed).sample(answered, min(size, len(answered))))
    with tempfile.TemporaryDirectory(prefix="replay-") as folder:
        source, again = Path(folder) / "sample.csv", Path(folder) / "replay.jsonl"
        with source.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([["text"], *[[results[row]["text"]] for row in rows]])
        command = [sys.executable, str(ROOT / "batch_classify.py"),
                   *replay_arguments(run["arguments"], source, again)]
        click.echo(f"replaying {len(rows)} of {len(answered)} answers: {' '.join(command[2:])}", err=True)
        done = subprocess.run(command, cwd=run.get("cwd") or None, capture_output=True, text=True)
        if done.returncode:
            raise click.ClickException(f"the replay's run failed:\n{done.stderr[-2000:]}")
        now, replayed = read_journal(again.with_name(again.name + ".journal.jsonl"))
    changed = [f"{key}: {header.get(key)!r} then, {now.get(key)!r} now" for key in sorted({*header, *now})
               if key not in NOT_RECORDED and header.get(key) != now.get(key)]
    for line in changed:
        click.echo(f"differs from the record: {line}")
    pairs = [(results[row], replayed[k]) for k, row in enumerate(rows, start=1)]
    identical = sum(first == second for first, second in pairs)
    same = sum(decisions(first) == decisions(second) for first, second in pairs)
    click.echo(f"{identical} of {len(pairs)} identical ({identical / len(pairs):.0%}), "
               f"{same} with the same decisions ({same / len(pairs):.0%})")
    for (first, second), row in zip(pairs, rows):
        if decisions(first) != decisions(second):
            click.echo(f"row {row}: {decisions(first)} then, {decisions(second)} now")


if __name__ == "__main__":
    main()
