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
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

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
from ..calibration import (
    MIN_NODE_OBSERVATIONS, Calibration, CalibrationError, FlagCalibration, fit_calibration, load_calibration, same_model,
    save_calibration,
)  # fmt: skip
from .calibrate import (
    PROBABILITY_STRATEGIES, THRESHOLDS, best_threshold, calibration_section, exhaustive, observations, threshold_table,
)  # fmt: skip
from .chart import render_chart, render_reliability
from .flags import FLAGGED, fit_flags, flag_lines, flag_section, redecided
from ..gold import OPERATOR
from ..gold.flag_models import FlagKnowledge
from ..gold.knowledge import Knowledge
from .gold import LOADERS, PARTS, Example, excluding, part, sample
from .learning import draw_gold, gold_embedder, gold_flags, gold_knowledge, gold_options
from .report import Report, build_report, format_table


@click.command(context_settings={"show_default": True, "max_content_width": 100})
@click.option("--data", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled CSV; repeat to evaluate on several files at once (ordinary comments and harm reports "
                   "for alerts), each sampled and halved on its own.")
@click.option("--kind", required=True, multiple=True, type=click.Choice(sorted(LOADERS)),
              help="The CSV's column layout: once for all files, or once per --data.")
@click.option("--sample", "size", multiple=True, type=int, default=[0],
              help="Texts drawn from the file; 0 takes them all. Once for all files, or once per --data.")
@click.option("--seed", default=42, help="Seed of the sample.")
@click.option("--capabilities", default="classification",
              help="Comma-separated; add stem_polarity to score polarity where the gold has it.")
@click.option("--exclude-sample", default=0,
              help="Draw --sample from the texts outside the sample of this size drawn with --exclude-seed (to fit a "
                   "calibration on other texts than those reported on).")
@click.option("--exclude-seed", default=42, help="Seed of the sample --exclude-sample leaves out.")
@click.option("--min-node-observations", default=MIN_NODE_OBSERVATIONS,
              help="--fit-calibration: a node scored this often gets a map of its own (0: one map per level only).")
@click.option("--part", "part_name", type=click.Choice(PARTS), default="all",
              help="Half of the sample to use: tune (the first) to choose settings on, report (the second) to report on.")
@click.option("--fit-calibration", "fit_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="select, score, flat: fit per-level calibration on this run (every node scored) and write it here, "
                   "with the threshold that did best.")
@click.option("--check-calibration", "check_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="select, score, flat: measure this calibration file on this run (every node scored).")
@click.option("--label", default=None, help="Name of the run in tables and charts (default: the strategy).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Report JSON.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG of F1 per level and calls per text (default: --out with .png).")
@gold_options
@engine_options
def main(
    data: tuple[Path, ...], kind: tuple[str, ...], size: tuple[int, ...], seed: int, exclude_sample: int, exclude_seed: int, min_node_observations: int,
    part_name: str, fit_path: Path | None, check_path: Path | None, capabilities: str, label: str | None,
    out: Path | None, chart: Path | None, **options: Any,
) -> None:
    settings = build_settings(options)
    gold = {key: options.pop(key) for key in ("gold_path", "gold_kind", "gold_size", "gold_seed", "sure_precision",
                                               "gold_tune")}
    try:
        names = resolve(c.strip() for c in capabilities.split(",") if c.strip())
    except UnknownCapability as exc:
        raise click.ClickException(str(exc)) from None
    flagged = [name for name in names if name in FLAGGED]
    if fit_path and flagged:  # fit the decisions on raw probabilities; no text passes, no details are asked
        undecided = {name: FlagCalibration(math.inf) for name in flagged}
        return _fit_flags(data, kind, size, seed, exclude_sample, exclude_seed, part_name, gold, fit_path, names, flagged,
                          replace(settings.classifier, flags=undecided), settings.engine, options["config"], label, out)
    calibrating = fit_path or check_path
    if calibrating and settings.classifier.strategy not in PROBABILITY_STRATEGIES:
        raise click.BadParameter(f"calibration needs probabilities: use --strategy {' or '.join(PROBABILITY_STRATEGIES)}",
                                 param_hint="--strategy")
    if fit_path and check_path:
        raise click.UsageError("give --fit-calibration or --check-calibration, not both")
    try:
        checked = load_calibration(check_path) if check_path else None
    except CalibrationError as exc:
        raise click.BadParameter(str(exc), param_hint="--check-calibration") from None
    engine, config = settings.engine, options["config"]
    gold_label = f", {settings.classifier.route} + gold {gold['gold_size'] or 'all'}" if gold["gold_path"] else ""
    label = label or settings.classifier.strategy + gold_label + (" (every node scored)" if calibrating else "")
    run_settings = exhaustive(settings.classifier) if calibrating else settings.classifier
    report, run, examples, taxonomy, meta = _run(data, kind, size, seed, exclude_sample, exclude_seed, part_name,
                                                 gold, names, run_settings, engine, config, label)
    if calibrating:
        report["calibration"] = _calibration(examples, run.predictions, taxonomy, settings.classifier,
                                             fit_path or check_path, checked, meta, min_node_observations)
    _write(report, out)
    if chart or out:
        click.echo(f"chart: {render_chart([report], chart or out.with_suffix('.png'))}")
    if calibrating and (chart or out):
        click.echo(f"reliability diagram: {render_reliability(report, (chart or out).with_suffix('.reliability.png'))}")


def _run(
    data: Sequence[Path], kind: Sequence[str], size: Sequence[int], seed: int, exclude_sample: int, exclude_seed: int,
    part_name: str, gold: dict[str, Any], names: list[str], settings: ClassifierSettings, engine: EngineSettings,
    config: Path, label: str,
) -> tuple[Report, harness.Run, list[Example], Taxonomy, dict[str, Any]]:
    """Load and sample the data (each file on its own), check it against the taxonomy, run it
    through the service (with `gold`'s draw as the taxonomy's gold): the report, the run, the examples in order,
    the taxonomy, the meta."""
    if len(kind) not in (1, len(data)) or len(size) not in (1, len(data)):
        raise click.UsageError("give --kind and --sample once, or once per --data")
    files = [(path, kind[k % len(kind)], size[k % len(size)]) for k, path in enumerate(data)]
    try:
        taxonomy = load_taxonomy(config)
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    sampled = [(loader, sample(excluding(LOADERS[loader](path), exclude_sample, exclude_seed), n, seed))
               for path, loader, n in files]
    examples = [e for _, drawn in sampled for e in part(drawn, part_name)]
    if not examples:
        raise click.BadParameter("the files hold no labelled rows", param_hint="--data")
    unknown = sorted({format_path(None, s) for e in examples for s in e.stems if not taxonomy.is_complete_stem(s)})
    if unknown and "classification" in names:
        raise click.BadParameter(
            f"gold stems missing from taxonomy {config}: {unknown[:5]}; give the taxonomy of these labels "
            "(configs/restaurants.json, laptops.json or 20ng.json)", param_hint="--config")
    datasets = [{"path": str(path), "kind": loader, "sample": n} for path, loader, n in files]
    meta = {
        "label": label,
        "dataset": {**(datasets[0] if len(datasets) == 1 else {"files": datasets, "path": ", ".join(map(str, data))}),
                    "seed": seed, "part": part_name,
                    "excluded": {"sample": exclude_sample, "seed": exclude_seed} if exclude_sample else None},
        "taxonomy": config.stem,
        "capabilities": names,
        "settings": settings_record(settings, engine),
    }
    knowledge, flags = None, None
    if gold["gold_path"]:
        drawn_gold = draw_gold(gold["gold_path"], gold["gold_kind"] or kind[0], gold["gold_size"], gold["gold_seed"],
                               [e for _, drawn in sampled for e in drawn])
        embedder, tuning = gold_embedder(drawn_gold, taxonomy, gold["gold_tune"], engine.cache_dir)
        if any(e.stems for e in drawn_gold) or not any(e.flags for e in drawn_gold):
            knowledge, meta["gold"] = gold_knowledge(drawn_gold, taxonomy, settings, gold["sure_precision"], embedder)
        else:  # a file of flag labels (suggestions, safecity): the decided capabilities learn from it
            flags, meta["gold"] = gold_flags(drawn_gold, settings, gold["sure_precision"], embedder)
        meta["gold"].update(path=str(gold["gold_path"]), seed=gold["gold_seed"], tuning=tuning)
    try:
        report, run = asyncio.run(_evaluate(engine, settings, taxonomy, examples, names, meta, knowledge, flags))
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    return report, run, examples, taxonomy, meta


def _write(report: Report, out: Path | None) -> None:
    click.echo(format_table(report))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        click.echo(f"report: {out}")


def _fit_flags(
    data: Sequence[Path], kind: Sequence[str], size: Sequence[int], seed: int, exclude_sample: int, exclude_seed: int,
    part_name: str, gold: dict[str, Any], path: Path, names: list[str], flagged: list[str], settings: ClassifierSettings,
    engine: EngineSettings, config: Path, label: str | None, out: Path | None,
) -> None:
    """Fit the decisions of the `flagged` capabilities on this run and write them into `path`
    (its other sections, if the file exists, are kept)."""
    report, run, examples, _, meta = _run(data, kind, size, seed, exclude_sample, exclude_seed, part_name, gold, names,
                                          settings, engine, config, label or "decisions, raw probabilities")
    source = (f"{', '.join(f'{Path(d).name} sample {n}' for d, n in zip(data, size * len(data)))} seed {seed} "
              f"part {part_name}, model {meta.get('model', '?')}")
    answers = [p.flags for p in run.predictions]
    fitted = fit_flags(examples, answers, flagged, source)
    if not fitted:
        raise click.ClickException(f"nothing to fit {', '.join(flagged)} on: the data needs texts that hold one and "
                                   "texts that do not (for alerts: --data of kind safecity and of kind semeval)")
    model = meta.get("model", "")
    try:
        kept = load_calibration(path) if path.exists() else Calibration({}, model=model)
    except CalibrationError as exc:
        raise click.BadParameter(str(exc), param_hint="--fit-calibration") from None
    if not same_model(kept.model, model):
        raise click.BadParameter(f"{path} holds a calibration fitted for model {kept.model!r}, not {model!r}: "
                                 "write this one to another file", param_hint="--fit-calibration")
    fitted = {name: replace(flag, model=model) for name, flag in fitted.items()}
    save_calibration(replace(kept, flags={**kept.flags, **fitted}, model=model), path)
    report["fitted_flags"] = {name: flag.to_json() for name, flag in fitted.items()}
    report["flags_at_fitted_thresholds"] = flag_section(examples, redecided(answers, fitted), flagged)
    _write(report, out)
    for name, flag in fitted.items():
        click.echo(f"{name}: threshold {flag.min_probability:.4f} ({'calibrated' if flag.map else 'raw'} probability)")
    click.echo("\n".join(["in-sample, at these thresholds:", *flag_lines(report["flags_at_fitted_thresholds"])]))
    click.echo(f"calibration: {path}")


def settings_record(classifier: ClassifierSettings, engine: EngineSettings) -> dict[str, Any]:
    """The run's settings as the report's JSON holds them (a calibration as its file would)."""
    calibration = classifier.calibration.to_json() if classifier.calibration else None
    return {"classifier": {**asdict(replace(classifier, calibration=None)), "calibration": calibration},
            "engine": asdict(engine)}


def _calibration(
    examples: list[Example], predictions: list[harness.Prediction], taxonomy: Taxonomy, settings: ClassifierSettings,
    path: Path, checked: Calibration | None, meta: dict[str, Any], min_node_observations: int,
) -> dict[str, Any]:
    """Fit and write a calibration to `path` on an exhaustive run, or check `checked` (read
    from `path`) on it; the report's calibration section, with what the raw probabilities
    would decide at `--min-probability` beside it."""
    max_paths = settings.max_paths
    pairs = observations(examples, predictions)
    if not pairs:
        raise click.ClickException("the run scored no node (every text failed?): nothing to calibrate on")
    if checked is None:
        dataset = meta["dataset"]
        excluded = dataset["excluded"]
        source = (f"{Path(dataset['path']).name} sample {dataset['sample']} seed {dataset['seed']} part "
                  f"{dataset['part']}"
                  + (f" (outside sample {excluded['sample']} seed {excluded['seed']})" if excluded else "")
                  + f", strategy {meta['settings']['classifier']['strategy']}, "
                  f"model {meta.get('model', '?')}, taxonomy {meta['taxonomy']}")
        fitted = replace(fit_calibration(pairs, source, min_node_observations), model=meta.get("model", ""))
        table = threshold_table(examples, predictions, fitted, max_paths, taxonomy.depth)
        calibration = replace(fitted, min_probability=best_threshold(table))
        save_calibration(calibration, path)
        click.echo(f"calibration: {path}")
    else:
        calibration = checked
        extra = () if checked.min_probability is None else (checked.min_probability,)
        table = threshold_table(examples, predictions, checked, max_paths, taxonomy.depth,
                                sorted({*THRESHOLDS, *extra}))
    [raw] = threshold_table(examples, predictions, Calibration({}), max_paths, taxonomy.depth,
                            (settings.min_probability,))
    return {**calibration_section(pairs, calibration), "fitted_here": checked is None, "file": str(path),
            "thresholds": table, "raw_at_min_probability": raw}


async def _evaluate(
    engine: EngineSettings, settings: ClassifierSettings, taxonomy: Taxonomy, examples: list[Example],
    names: list[str], meta: dict[str, Any], knowledge: Knowledge | None = None, flags: FlagKnowledge | None = None,
) -> tuple[Report, harness.Run]:
    """Start the backend, run the sample through the service once, close the backend."""
    pool = ProcessorPool(engine)
    await pool.start()
    try:
        processor = pool.processor
        service = ClassificationService(processor, {taxonomy.name: taxonomy}, settings,
                                        knowledge={(taxonomy.name, OPERATOR): knowledge} if knowledge else None)
        if flags is not None:
            service.flag_knowledge[OPERATOR] = flags
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
    meta.update(backend=processor.backend, model=processor.model)
    return build_report(examples, run, taxonomy, meta), run


if __name__ == "__main__":
    main()
