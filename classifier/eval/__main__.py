"""`python -m classifier.eval`: classify a labelled sample through the service and report
quality per level and cost per text.

    .venv/bin/python -m classifier.eval --data ../shared/data/semeval16_restaurants_train.csv \
        --kind semeval --config configs/restaurants.json --sample 200 --seed 42 \
        --capabilities classification,stem_polarity --out runs/select.json

Prints a table, writes the whole report as JSON (`--out`) and a PNG chart beside it.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ..capabilities import UnknownCapability, resolve
from ..batch.display import progress_bar
from ..cli import USER_ERRORS, build_settings, engine_options
from ..llm.pool import ProcessorPool
from ..service import ClassificationService
from ..settings import ClassifierSettings, EngineSettings
from ..taxonomy import Taxonomy, format_path, load_taxonomy
from . import harness
from .cache import CounterReader, server_reader, usage_reader
from .chart import render_chart
from .gold import LOADERS, Example, sample
from .report import Report, build_report, format_table


@click.command(context_settings={"show_default": True, "max_content_width": 100})
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled CSV.")
@click.option("--kind", required=True, type=click.Choice(sorted(LOADERS)), help="The CSV's column layout.")
@click.option("--sample", "size", default=0, help="Texts drawn from the file; 0 takes them all.")
@click.option("--seed", default=42, help="Seed of the sample.")
@click.option("--capabilities", default="classification",
              help="Comma-separated; add stem_polarity to score polarity where the gold has it.")
@click.option("--label", default=None, help="Name of the run in tables and charts (default: the strategy).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Report JSON.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG of F1 per level and calls per text (default: --out with .png).")
@engine_options
def main(
    data: Path, kind: str, size: int, seed: int, capabilities: str, label: str | None, out: Path | None,
    chart: Path | None, **options: Any,
) -> None:
    settings = build_settings(options)
    engine, config = settings.engine, options["config"]
    try:
        names = resolve(c.strip() for c in capabilities.split(",") if c.strip())
        taxonomy = load_taxonomy(config)
    except (*USER_ERRORS, UnknownCapability) as exc:
        raise click.ClickException(str(exc)) from None
    examples = sample(LOADERS[kind](data), size, seed)
    if not examples:
        raise click.BadParameter("the file holds no labelled rows", param_hint="--data")
    unknown = sorted({format_path(None, s) for e in examples for s in e.stems if not taxonomy.is_complete_stem(s)})
    if unknown:
        raise click.BadParameter(
            f"gold stems missing from taxonomy {config}: {unknown[:5]}; give the taxonomy of these labels "
            "(configs/restaurants.json, laptops.json or 20ng.json)", param_hint="--config")
    meta = {
        "label": label or settings.classifier.strategy,
        "dataset": {"path": str(data), "kind": kind, "sample": size, "seed": seed},
        "taxonomy": config.stem,
        "capabilities": names,
        "settings": {"classifier": asdict(settings.classifier), "engine": asdict(engine)},
    }
    try:
        report = asyncio.run(_evaluate(engine, settings.classifier, taxonomy, examples, names, meta))
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_table(report))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        click.echo(f"report: {out}")
    if chart or out:
        click.echo(f"chart: {render_chart([report], chart or out.with_suffix('.png'))}")


async def _evaluate(
    engine: EngineSettings, settings: ClassifierSettings, taxonomy: Taxonomy, examples: list[Example],
    names: list[str], meta: dict[str, Any],
) -> Report:
    """Start the backend, run the sample through the service once, close the backend."""
    pool = ProcessorPool(engine)
    await pool.start()
    try:
        processor = pool.processor
        service = ClassificationService(processor, {taxonomy.name: taxonomy}, settings)
        reader: CounterReader = (
            server_reader(engine.server_urls) if engine.backend == "vllm-server" else usage_reader(processor.usage)
        )
        console = Console(stderr=True)
        progress = progress_bar(console)
        task = progress.add_task("evaluating", total=len(examples))  # the clock starts once the engine is up
        with progress:
            run = await harness.run(service, examples, names, prefix_cache=reader,
                                    on_done=lambda count: progress.advance(task, count))
    finally:
        await pool.close()
    return build_report(examples, run, taxonomy, {**meta, "backend": processor.backend, "model": processor.model})


if __name__ == "__main__":
    main()
