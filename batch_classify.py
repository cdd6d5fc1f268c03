"""python batch_classify.py --config configs/topics.json --input-file comments.csv --input-column text
                          [--save-path out.json | --output-dir DIR] [--enable-stem-polarity ...]

Classifies every comment of a CSV file. Results go chunk by chunk into a journal beside
the output (`<output>.journal.jsonl`, synced to disk per chunk); the output is rendered
from it at the end. Rerunning the same command after a crash or Ctrl-C continues where
it stopped: no row is lost or written twice, and rows that failed are tried again.
"""
from __future__ import annotations

import asyncio
import sys
import time
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
from classifier.settings import Settings
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
def main(**options: Any) -> None:
    """Classify the comments of a CSV file. Without --enable-* flags: classification only."""
    console = Console(stderr=True)
    capabilities = resolve([c for flag, c in ENABLE_FLAGS.items() if options[flag]] or DEFAULT_CAPABILITIES)
    output, output_format = _output_path(options)
    settings = build_settings(options)
    try:
        taxonomy = load_taxonomy(options["config"])
        rows = read_rows(options["input_file"], options["input_column"])
    except (*USER_ERRORS, InputError) as exc:
        raise click.ClickException(str(exc)) from None
    skipped = f"; skipped {len(rows.skipped)} empty rows: {_numbers(rows.skipped)}" if rows.skipped else ""
    console.print(f"read {options['input_file']}: encoding {rows.encoding}, delimiter {rows.delimiter!r}, "
                  f"{rows.total} rows, {len(rows.texts)} texts in column {options['input_column']!r}{skipped}")

    journal = Journal(output.with_name(output.name + ".journal.jsonl"), {
        "input": str(options["input_file"].resolve()), "input_column": options["input_column"],
        "config": str(options["config"].resolve()), "capabilities": capabilities,
        "strategy": settings.classifier.strategy, "llm": settings.engine.llm,
    })  # fmt: skip
    try:
        journal.open(resume=options["resume"])
    except JournalMismatch as exc:
        raise click.ClickException(str(exc)) from None
    todo = [row for row in rows.texts if "error" in journal.results.get(row, {"error": "not done"})]
    resumed = len(rows.texts) - len(todo)
    if resumed:
        console.print(f"resuming from {journal.path}: {resumed} rows done, {len(todo)} to go")

    done_now, seconds, interrupted = 0, 0.0, False
    if todo:
        done_now, seconds, interrupted = _classify(
            console, settings, taxonomy, rows.texts, todo, capabilities, journal, options["chunk_size"], resumed
        )
    results = {row: journal.results[row] for row in rows.texts if row in journal.results}
    render(results, output, output_format)
    Console().print(summary_table(Summary(
        rows=rows.total, skipped=len(rows.skipped), resumed=resumed, done_now=done_now,
        failed=sum("error" in result for result in results.values()), seconds=seconds, output=output,
        interrupted=interrupted, top_paths=top_paths(results, TOP_PATHS),
    )))  # fmt: skip
    if interrupted:
        sys.exit(130)


def _classify(console: Console, settings: Settings, taxonomy: Taxonomy, texts: dict[int, str], todo: list[int],
              capabilities: list[str], journal: Journal, chunk_size: int, resumed: int) -> tuple[int, float, bool]:
    """Run the chunks under a progress bar: texts done, seconds since the engine was up, and
    whether Ctrl-C stopped it (the journal stays whole either way)."""
    status = console.status(f"starting the backend ({settings.engine.backend}); a local engine takes 15-60 s")
    status.start()
    progress = progress_bar(console)
    done, started_at = 0, time.monotonic()

    def started(model: str) -> None:
        nonlocal started_at
        started_at = time.monotonic()
        status.stop()
        console.print(f"classifying with {describe(settings, model)}")
        progress.add_task("classifying", total=len(texts), completed=resumed)  # the clock starts now
        progress.start()

    def chunk_done(count: int) -> None:
        nonlocal done
        done += count
        progress.advance(progress.task_ids[0], count)

    try:
        asyncio.run(classify_rows(settings, taxonomy, texts, todo, capabilities, journal, chunk_size=chunk_size,
                                  on_started=started, on_chunk=chunk_done))
    except KeyboardInterrupt:
        return done, time.monotonic() - started_at, True
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        status.stop()
        progress.stop()
    return done, time.monotonic() - started_at, False


def _numbers(rows: list[int], shown: int = 10) -> str:
    return ", ".join(map(str, rows[:shown])) + (f" and {len(rows) - shown} more" if len(rows) > shown else "")


if __name__ == "__main__":
    main()
