"""`python -m classifier.gold`: a taxonomy's labelled comments (gold) in the jobs database.

    .venv/bin/python -m classifier.gold import labels.csv --config configs/restaurants.json
    .venv/bin/python -m classifier.gold import export.json --kind label-studio --config configs/restaurants.json
    .venv/bin/python -m classifier.gold import suggestions.csv --kind suggestions     # flag labels: no taxonomy
    .venv/bin/python -m classifier.gold list --config configs/restaurants.json
    .venv/bin/python -m classifier.gold train --config configs/restaurants.json   # tunes the encoder too
    .venv/bin/python -m classifier.gold label-config --config configs/restaurants.json > config.xml
    .venv/bin/python -m classifier.gold tasks output.jsonl --config configs/restaurants.json --out tasks.json

The database is the server's (`--data-dir`, or `--database-url` for PostgreSQL), so a
server started on it finds the gold and the model trained here.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import click

from ..cli import stack
from ..eval.gold import LOADERS
from ..jobs.store import JobStore
from ..settings import DEFAULT_CACHE_DIR, JobSettings
from ..taxonomy import Taxonomy, TaxonomyError, format_path, load_taxonomy
from . import OPERATOR
from .embedder import Embedder, EmbedderMissing, model_dir, tuned_dir
from .flag_labels import FLAGS, FlagStore, counts, from_flags, read_flags_csv
from .label_studio import LabelStudioError, labelling_config, read_export, tasks_from_results
from .labels import Label, LabelError, checked, read_csv, to_wire
from .store import GoldStore, Stored, usable
from .training import build, build_flags, model_path
from .tuning import TuningSettings, tuned_once, tuning_set

# Kinds that label the decided capabilities (alerts, recommendations, trend), never topics.
FLAG_KINDS = ("flags", "suggestions", "safecity")
IMPORT_KINDS = ("paths", "label-studio", *sorted(set(LOADERS) - set(FLAG_KINDS)), *FLAG_KINDS)
ALERT_TYPES = {"safecity": "sexual_harassment"}  # what every report of a labelled file is

where = stack(
    click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                 help="The taxonomy file the labels belong to (not needed for flag labels)."),
    click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=JobSettings.data_dir,
                 envvar="CLASSIFIER_DATA_DIR", show_default=True, help="The server's --data-dir."),
    click.option("--database-url", default=None, envvar="CLASSIFIER_DATABASE_URL", help="The server's --database-url."),
)


def _open(config: Path | None, data_dir: Path, database_url: str | None) -> tuple[Taxonomy | None, GoldStore]:
    taxonomy = None
    if config is not None:
        try:
            taxonomy = load_taxonomy(config)
        except TaxonomyError as exc:
            raise click.ClickException(str(exc)) from None
    jobs = JobSettings(data_dir=data_dir, database_url=database_url)
    return taxonomy, GoldStore(JobStore(jobs.url, data_dir).engine)


def _needed(taxonomy: Taxonomy | None) -> Taxonomy:
    if taxonomy is None:
        raise click.UsageError("give the taxonomy file the labels belong to: --config FILE")
    return taxonomy


@click.group()
def main() -> None:
    """Labelled comments per taxonomy: import, list, delete, train, Label Studio."""


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(IMPORT_KINDS), default="paths", show_default=True,
              help="paths: a CSV of text and |-joined > paths; label-studio: its JSON export; others: the eval files.")
@where
def import_(file: Path, kind: str, **where_: Any) -> None:
    """Store FILE's labels as gold (a text labelled before gets the new label)."""
    taxonomy, store = _open(**where_)
    if kind in FLAG_KINDS:
        _import_flags(file, kind, FlagStore(store.engine))
        return
    taxonomy = _needed(taxonomy)
    try:
        labels = _read(file, kind, taxonomy)
        added, replaced = store.put(taxonomy.name, labels, source="label_studio" if kind == "label-studio" else "import",
                                    owner=OPERATOR)
    except (LabelError, LabelStudioError) as exc:
        raise click.ClickException(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{file}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}); "
                                   "give Label Studio's JSON export") from None
    click.echo(f"taxonomy {taxonomy.name}: {added} labels added, {replaced} replaced")


def _import_flags(file: Path, kind: str, store: FlagStore) -> None:
    try:
        if kind == "flags":
            labels = read_flags_csv(file)
        else:
            labels = [label for e in LOADERS[kind](file) for label in from_flags(e.text, e.flags, ALERT_TYPES.get(kind))]
        store.put(labels, source="import", owner=OPERATOR)
    except LabelError as exc:
        raise click.ClickException(str(exc)) from None
    except (UnicodeDecodeError, KeyError, csv.Error) as exc:
        raise click.ClickException(f"{file}: not a {kind} file ({type(exc).__name__}: {exc})") from None
    for name, (holding, other) in counts(labels).items():
        if holding or other:
            click.echo(f"{name}: {holding + other} flag labels ({holding} holding one, {other} not)")


def _read(file: Path, kind: str, taxonomy: Taxonomy) -> list[Label]:
    if kind == "paths":
        return read_csv(file, taxonomy)
    if kind == "label-studio":
        return read_export(json.loads(file.read_text(encoding="utf-8")), taxonomy)
    return [checked(taxonomy, e.text, [format_path(None, s) for s in e.stems],
                    {format_path(None, s): p for s, p in e.polarity.items()}) for e in LOADERS[kind](file)]


@main.command("list")
@click.option("--limit", default=20, show_default=True)
@where
def list_(limit: int, **where_: Any) -> None:
    """How many labels the operator imported for the taxonomy, and the first LIMIT as JSON lines."""
    found, store = _open(**where_)
    taxonomy = _needed(found)
    stored = store.labels(taxonomy.name, OPERATOR)
    click.echo(f"taxonomy {taxonomy.name}: {len(stored)} labels", err=True)
    for item in stored[:limit]:
        click.echo(json.dumps({**to_wire(item.label, taxonomy), "source": item.source}, ensure_ascii=False))


@main.command()
@click.argument("label_id")
@where
def delete(label_id: str, **where_: Any) -> None:
    """Delete one imported label by its id (as `list` shows it)."""
    found, store = _open(**where_)
    taxonomy = _needed(found)
    if not store.delete(taxonomy.name, label_id, OPERATOR):
        raise click.ClickException(f"no label {label_id!r} in taxonomy {taxonomy.name!r}")
    click.echo(f"deleted {label_id}")


@main.command()
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_CACHE_DIR)
@click.option("--tune/--no-tune", default=True, show_default=True,
              help="Tune the encoder on the labels first, kept only where it measures better on held-back labels.")
@click.option("--tune-minutes", type=click.FloatRange(0.5), default=TuningSettings.max_seconds / 60,
              show_default=True, help="The most the encoder's tuning may take.")
@click.option("--tune-epochs", type=click.FloatRange(0.1), default=TuningSettings.epochs, show_default=True,
              help="Passes over the labels while tuning the encoder.")
@where
def train(cache_dir: Path, tune: bool, tune_minutes: float, tune_epochs: float, **where_: Any) -> None:
    """Train the learned classifiers on the imported labels now (a server on the same data
    folder reads them at start): the flag labels' always, the taxonomy's with --config. With
    --tune (the default) the encoder is tuned on those labels first."""
    taxonomy, store = _open(**where_)
    data_dir = where_["data_dir"]
    flag_store = FlagStore(store.engine)
    labels = usable(store.labels(taxonomy.name, OPERATOR), taxonomy) if taxonomy is not None else []
    if taxonomy is not None and not labels:
        raise click.ClickException(f"taxonomy {taxonomy.name!r} has no labels: import some first")
    try:
        if tune:
            _tune(taxonomy, labels, flag_store, cache_dir, data_dir,
                  TuningSettings(epochs=tune_epochs, max_seconds=tune_minutes * 60))
        embedder = Embedder.for_data(data_dir, cache_dir)
        flags = build_flags(flag_store, OPERATOR, embedder, data_dir / "learned")
        if taxonomy is None and flags is None:
            raise click.ClickException("no flag labels, and no --config for topic labels: import some first")
        for name, flag in (flags.models.items() if flags else ()):
            click.echo(f"{name}: trained on {len(flag.texts)} flag labels"
                       + ("" if flag.model else " (too few of one kind for a classifier: the LLM decides)"))
        if taxonomy is None:
            return
        path = model_path(data_dir / "learned", taxonomy)
        knowledge = build(labels, taxonomy, embedder, path, {}, train=True)
    except EmbedderMissing as exc:
        raise click.ClickException(str(exc)) from None
    modelled = len(knowledge.model.models) if knowledge and knowledge.model else 0
    click.echo(f"taxonomy {taxonomy.name}: trained on {len(labels)} labels, {modelled} nodes modelled: {path}")


def _tune(taxonomy: Taxonomy | None, labels: list[Stored], flag_store: FlagStore, cache_dir: Path, data_dir: Path,
          settings: TuningSettings) -> None:
    """The encoder tuned on the taxonomy's and the flag labels, unless it was tuned on exactly these."""
    flag_labels = [label for capability in FLAGS for label, _ in flag_store.labels(OPERATOR, capability)]
    data = tuning_set({taxonomy.name: [(s.label.text, s.label.stems) for s in labels]} if taxonomy else {},
                      flag_labels)
    click.echo(f"encoder: {len(data.texts)} labelled comments, {len(data.columns)} decisions to tune on "
               f"(at most {settings.max_seconds / 60:g} minutes)", err=True)
    record = tuned_once(data, model_dir(cache_dir), tuned_dir(data_dir), settings,
                        progress=lambda line: click.echo(line, err=True))
    click.echo(f"encoder: {record['reason']}")


@main.command("label-config")
@click.option("--config", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def label_config(config: Path) -> None:
    """Label Studio's labelling config for the taxonomy (a Taxonomy control over the text)."""
    click.echo(labelling_config(load_taxonomy(config)))


@main.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--model-version", default="classifier", show_default=True)
def tasks(results: Path, config: Path, out: Path, model_version: str) -> None:
    """Label Studio tasks with pre-annotations from RESULTS: a job's output file (JSONL) or a
    batch_classify JSON output."""
    try:
        made = tasks_from_results(results.read_text(encoding="utf-8"), load_taxonomy(config), model_version)
    except LabelStudioError as exc:
        raise click.ClickException(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{results}: not UTF-8 text (byte {exc.start})") from None
    out.write_text(json.dumps(made, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    click.echo(f"{len(made)} tasks: {out}")


if __name__ == "__main__":
    main()
