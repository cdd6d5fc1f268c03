"""python batch_classify.py --config configs/topics.json --input-file comments.csv --input-column text
                          [--save-path out.json | --output-dir DIR] [--enable-stem-polarity ...]

Classifies every comment of a CSV file. Results go chunk by chunk into a journal beside
the output (`<output>.journal.jsonl`, synced to disk per chunk); the output is rendered
from it at the end. Rerunning the same command after a crash or Ctrl-C continues where
it stopped: no row is lost or written twice, and rows that failed are tried again.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from classifier.batch.display import Summary, progress_bar, summary_table
from classifier.batch.inputs import InputError, read_rows
from classifier.batch.journal import Journal, JournalMismatch
from classifier.batch.render import FORMATS, render
from classifier.batch.run import classify_rows, top_paths
from classifier.capabilities import DEFAULT_CAPABILITIES, resolve
from classifier.cli import USER_ERRORS, build_settings, describe, engine_options, option
from classifier.distill import DISTILLED
from classifier.distill.route import Distilled, shares
from classifier.llm.embedded import model_name
from classifier.prompts import PROMPTS_VERSION
from classifier.record import produced_by
from classifier.report.html import RunInfo, write_report
from classifier.settings import DistillSettings, Settings
from classifier.taxonomy import Taxonomy, load_taxonomy

ENABLE_FLAGS = {  # flag -> capability, as the prototype names them
    "enable_classification": "classification",
    "enable_recommendations": "recommendations",
    "enable_alerts": "alerts",
    "enable_stem_polarity": "stem_polarity",
    "enable_stem_recommendations": "stem_recommendations",
    "enable_stem_trends": "stem_trend",
    "enable_trends": "trend",
}
TOP_PATHS = 10
# The prototype's --prompt-type, as it maps here: `keyword` shows example answers built from
# the nodes' keywords (--few-shot); `sentiment` adds how the comment feels about each topic
# it finds (the stem_polarity capability).
PROMPT_TYPES = ("standard", "keyword", "sentiment")
ONLY_FLAGS = {"recommendations_only": "recommendations", "alerts_only": "alerts"}
LOG_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)


def _capabilities(options: dict[str, Any]) -> list[str]:
    """What to run: the --*-only flags alone (no taxonomy walk), else the --enable-* flags
    (classification when none), plus stem polarity for --prompt-type sentiment."""
    only = [c for flag, c in ONLY_FLAGS.items() if options[flag]]
    enabled = [c for flag, c in ENABLE_FLAGS.items() if options[flag]]
    if only and (enabled or options["prompt_type"] != "standard"):
        raise click.UsageError("--recommendations-only and --alerts-only run only that capability: "
                               "leave out the --enable-* flags and --prompt-type")
    if only:
        return resolve(only)
    if options["prompt_type"] == "sentiment":
        enabled.append("stem_polarity")
    return resolve(enabled or DEFAULT_CAPABILITIES)


def _distilled(options: dict[str, Any]) -> DistillSettings | None:
    """The distilled route's settings, with --route distilled."""
    if options["route"] != DISTILLED:
        return None
    return DistillSettings(sample=options["distill_sample"], floor=options["distill_floor"],
                           min_comments=options["distill_min_comments"], labels=options["distill_labels"])


def _fingerprint(options: dict[str, Any], settings: Settings, capabilities: list[str]) -> dict[str, Any]:
    """What the journal records of a run: everything that changes its answers, so a rerun
    with any of it changed refuses to mix its results with the earlier ones."""
    classifier = settings.classifier
    distilled = _distilled(options)
    return {
        **({"distilled": asdict(distilled)} if distilled else {}),
        "input": str(options["input_file"].resolve()), "input_column": options["input_column"],
        "config": str(options["config"].resolve()),
        "taxonomy_sha256": hashlib.sha256(options["config"].read_bytes()).hexdigest(),
        "capabilities": capabilities, "project_name": options["project_name"],
        "backend": settings.engine.backend,
        "llm": model_name(settings.engine.llm) if settings.engine.backend == "local" else settings.engine.llm,
        "strategy": classifier.strategy, "max_paths": classifier.max_paths, "reasoning": classifier.reasoning,
        "few_shot": classifier.few_shot, "min_confidence": classifier.min_confidence,
        "min_probability": classifier.min_probability,
        "calibration": hashlib.sha256(json.dumps(classifier.calibration.to_json()).encode()).hexdigest()
        if classifier.calibration else None,
        "flags": {name: flag.to_json() for name, flag in sorted(classifier.flags.items())},
        "require_excerpt": classifier.require_excerpt, "max_stem_definitions": classifier.max_stem_definitions,
        "stem_reasoning": classifier.stem_reasoning,
        "prompts": PROMPTS_VERSION, **produced_by(settings.engine),
    }  # fmt: skip


def _output_path(options: dict[str, Any]) -> tuple[Path, str]:
    """Where the output goes and in which format (--output-format, else the file's suffix, else json)."""
    save_path, output_dir, chosen = options["save_path"], options["output_dir"], options["output_format"]
    if save_path and output_dir:
        raise click.UsageError("give --save-path or --output-dir, not both")
    if save_path:
        suffix = save_path.suffix.lstrip(".").lower()
        return save_path, chosen or (suffix if suffix in FORMATS else "json")
    output_format = chosen or "json"
    return (output_dir or Path(".")) / f"{options['input_file'].stem}_classified.{output_format}", output_format


def _enable_options(function: Any) -> Any:
    for flag in reversed(ENABLE_FLAGS):
        name = "--" + flag.replace("_", "-")
        function = option(name, is_flag=True, help=f"Run {ENABLE_FLAGS[flag]}.")(function)
    return function


@click.command(context_settings={"show_default": True})
@engine_options
@option("--input-file", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV file of comments.")
@option("--input-column", default="text", help="Column holding the comments.")
@option("--save-path", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Output file (.json, .jsonl or .csv).")
@option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Folder for <input>_classified.<format> (default: the current folder).")
@option("--output-format", type=click.Choice(FORMATS), default=None, help="Default: from --save-path's suffix, else json.")
@option("--resume/--no-resume", default=True, help="Continue from the journal an earlier run left, or start over.")
@option("--chunk-size", type=click.IntRange(1), default=64,
        help="Texts per service call; at most this many are redone after a crash.")
@_enable_options
@option("--recommendations-only", is_flag=True, help="Run recommendations alone (no taxonomy walk); with "
        "--alerts-only, both.")
@option("--alerts-only", is_flag=True, help="Run alerts alone (no taxonomy walk); with --recommendations-only, both.")
@option("--project-name", default=None, help="Replaces the taxonomy root's name as the path prefix.")
@option("--prompt-type", type=click.Choice(PROMPT_TYPES), default="standard",
        help="The prototype's prompt styles: keyword = example answers from the keywords (--few-shot); "
             "sentiment = also stem polarity.")
@option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="The HTML report of the run (default: beside the output, <output>.report.html).")
@option("--distill-sample", type=click.FloatRange(0), default=DistillSettings.sample,
        help="--route distilled: comments the LLM answers to teach, a number (>= 1) or a share of the file (< 1); "
             "0: 5% of the file, at least 200.")
@option("--distill-floor", type=click.IntRange(0), default=DistillSettings.floor,
        help="--route distilled: per topic and flag, comments drawn near it where the sample shows it fewer times.")
@option("--distill-min-comments", type=click.IntRange(0), default=DistillSettings.min_comments,
        help="--route distilled: a file with fewer comments is answered by the LLM alone.")
@option("--distill-labels", type=click.Choice(("all", "sure")), default=DistillSettings.labels,
        help="--route distilled: which of the LLM's answers teach: all, or those it gave with a high probability.")
@click.option("-v", "--verbose", count=True, help="More log lines: -v info, -vv debug.")
def main(**options: Any) -> None:
    """Classify the comments of a CSV file. Without --enable-* flags: classification only."""
    logging.basicConfig(level=LOG_LEVELS[min(options["verbose"], 2)], format="%(levelname)s %(name)s: %(message)s")
    console = Console(stderr=True)
    capabilities = _capabilities(options)
    output, output_format = _output_path(options)
    settings = build_settings(options)
    if options["prompt_type"] == "keyword":
        settings = replace(settings, classifier=replace(settings.classifier, few_shot=True))
    try:
        taxonomy = load_taxonomy(options["config"])
        rows = read_rows(options["input_file"], options["input_column"])
    except (*USER_ERRORS, InputError) as exc:
        raise click.ClickException(str(exc)) from None
    for warning in taxonomy.warnings:
        console.print(f"warning: {options['config']}: {warning}")
    skipped = f"; skipped {len(rows.skipped)} empty rows: {_numbers(rows.skipped)}" if rows.skipped else ""
    console.print(f"read {options['input_file']}: encoding {rows.encoding}, delimiter {rows.delimiter!r}, "
                  f"{rows.total} rows, {len(rows.texts)} texts in column {options['input_column']!r}{skipped}")

    journal = Journal(output.with_name(output.name + ".journal.jsonl"), _fingerprint(options, settings, capabilities),
                      run={"arguments": sys.argv[1:], "cwd": str(Path.cwd())})
    try:
        journal.open(resume=options["resume"])
    except JournalMismatch as exc:
        raise click.ClickException(str(exc)) from None
    todo = [row for row in rows.texts if "error" in journal.results.get(row, {"error": "not done"})]
    resumed = len(rows.texts) - len(todo)
    if resumed:
        console.print(f"resuming from {journal.path}: {resumed} rows done, {len(todo)} to go")

    run = _Run(model=settings.engine.llm or "the embedded default")
    if todo:
        run = _classify(
            console, settings, taxonomy, rows.texts, todo, capabilities, journal, options["chunk_size"], resumed,
            options["project_name"], _distilled(options),
        )
    results = {row: journal.results[row] for row in rows.texts if row in journal.results}
    render(results, output, output_format, taxonomy, rows.records)
    report = options["report"] or output.with_name(f"{output.stem}.report.html")
    write_report(report, [results[row] for row in sorted(results)], taxonomy,
                 RunInfo(taxonomy.name, run.model, capabilities, run.seconds or None))
    Console().print(summary_table(Summary(
        rows=rows.total, skipped=len(rows.skipped), resumed=resumed, done_now=run.done,
        failed=sum("error" in result for result in results.values()), seconds=run.seconds, output=output,
        interrupted=run.interrupted, top_paths=top_paths(results, TOP_PATHS),
        answered=shares(list(results.values())) if options["route"] == DISTILLED else None,
    )))  # fmt: skip
    if run.distilled is not None:
        console.print(_taught(run.distilled))
    console.print(f"report: {report}")
    if run.interrupted:
        sys.exit(130)


@dataclass
class _Run:
    """What the classifying part of a run did."""

    model: str
    done: int = 0
    seconds: float = 0.0  # since the engine was up
    interrupted: bool = False  # by Ctrl-C (the journal stays whole)
    distilled: Distilled | None = None  # what the distilled route did, where it ran to the end


def _taught(distilled: Distilled) -> str:
    """One line on what the distilled route learned from."""
    if distilled.llm_only:
        return f"distilled route: {distilled.llm_only}"
    said = {"learned": "learned", "surely not": "only 'surely not' learned (too few found)",
            "": "too few examples: the LLM answers"}
    models = ", ".join(f"{task} {said[made]}" for task, made in distilled.models.items())
    return (f"distilled route: the LLM answered {distilled.sampled} of {distilled.comments} comments to teach "
            f"({distilled.floor} drawn near rare topics and flags); learned from {distilled.silver}: {models}")


def _classify(console: Console, settings: Settings, taxonomy: Taxonomy, texts: dict[int, str], todo: list[int],
              capabilities: list[str], journal: Journal, chunk_size: int, resumed: int,
              project_name: str | None, distilled: DistillSettings | None) -> _Run:
    """Run the chunks under a progress bar."""
    status = console.status(f"starting the backend ({settings.engine.backend}); a local engine takes 15-60 s")
    status.start()
    progress = progress_bar(console)
    run, started_at = _Run(model=settings.engine.llm or "unknown"), time.monotonic()

    def started(model: str) -> None:
        nonlocal started_at
        started_at = time.monotonic()
        run.model = model
        status.stop()
        console.print(f"classifying with {describe(settings, model)}")
        progress.add_task("classifying", total=len(texts), completed=resumed)  # the clock starts now
        progress.start()

    def chunk_done(count: int) -> None:
        run.done += count
        progress.advance(progress.task_ids[0], count)

    def phase(name: str, detail: str) -> None:
        progress.update(progress.task_ids[0], description=name)
        progress.console.print(f"{name}: {detail}")

    try:
        run.distilled = asyncio.run(classify_rows(
            settings, taxonomy, texts, todo, capabilities, journal, chunk_size=chunk_size, project_name=project_name,
            on_started=started, on_chunk=chunk_done, distilled=distilled, on_phase=phase))
    except KeyboardInterrupt:
        run.interrupted = True
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        status.stop()
        progress.stop()
    run.seconds = time.monotonic() - started_at
    return run


def _numbers(rows: list[int], shown: int = 10) -> str:
    return ", ".join(map(str, rows[:shown])) + (f" and {len(rows) - shown} more" if len(rows) > shown else "")


if __name__ == "__main__":
    main()
