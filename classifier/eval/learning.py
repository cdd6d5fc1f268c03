"""The eval's gold (`--gold FILE --gold-size N`): labelled comments drawn, with a seed, from
outside the evaluation sample, given to the walk as a taxonomy's stored gold would be, and
what the report says of it (how much of it, who decided the accepted nodes).

Nothing of the evaluation sample (either half, by id or by text) is ever drawn, so no text
can retrieve itself or another text it is scored with.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import click

from ..cli import stack
from ..gold.embedder import Embedder, model_dir
from ..gold.flag_labels import FLAGS, from_flags
from ..gold.flag_models import FlagKnowledge, flag_model
from ..gold.knowledge import Knowledge, build_knowledge, normalized
from ..gold.learned import SURE_PRECISION
from ..gold.tuning import TuningSettings, tuned_once, tuning_set
from ..settings import DEFAULT_CACHE_DIR, ClassifierSettings
from ..taxonomy import Taxonomy, format_path
from .gold import LOADERS, Example, sample

gold_options = stack(
    click.option("--gold", "gold_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                 help="Labelled CSV the gold is drawn from (never a text of the evaluation sample)."),
    click.option("--gold-kind", type=click.Choice(sorted(LOADERS)), default=None,
                 help="--gold's column layout (default: the first --kind)."),
    click.option("--gold-size", type=click.IntRange(0), default=0, help="Gold comments drawn; 0 takes them all."),
    click.option("--gold-seed", default=42, help="Seed of the gold draw."),
    click.option("--sure-precision", type=click.FloatRange(0.5, 1), default=SURE_PRECISION,
                 help="cascade: how often, on held-back gold, the learned classifier's lone decisions must be right."),
    click.option("--gold-tune/--no-gold-tune", default=False, show_default=True,
                 help="Tune the encoder on the gold first, as `gold train` does (kept where it measures better; "
                      "cached per gold draw)."),
)


def gold_embedder(gold: Sequence[Example], taxonomy: Taxonomy | None, tune: bool,
                  cache_dir: Path = DEFAULT_CACHE_DIR) -> tuple[Embedder, dict[str, Any] | None]:
    """The encoder the gold's learned models read: the packaged one, or with `tune` one tuned on
    the gold (topics and flags) as `gold train` tunes it, and the tuning's record."""
    if not tune:
        return Embedder(cache_dir), None
    topics = taxonomy is not None and any(e.stems for e in gold)
    data = tuning_set({taxonomy.name: [(e.text, e.stems) for e in gold]} if topics else {},  # type: ignore[union-attr]
                      [label for e in gold for label in from_flags(e.text, e.flags)])
    target = cache_dir / "eval-encoders" / data.digest
    record = tuned_once(data, model_dir(cache_dir), target, TuningSettings(),
                        progress=lambda line: click.echo(line, err=True))
    click.echo(f"encoder: {record['reason']}", err=True)
    return Embedder.tuned_or_packaged(target, cache_dir), {key: record[key] for key in (
        "texts", "columns", "held", "kept", "frozen", "tuned", "seconds", "steps")}


def draw_gold(path: Path, kind: str, size: int, seed: int, held: Sequence[Example]) -> list[Example]:
    """`size` labelled comments of `path` (all with 0) that are not in `held`, by id or text."""
    ids, texts = {e.id for e in held}, {normalized(e.text) for e in held}
    pool = [e for e in LOADERS[kind](path) if e.id not in ids and normalized(e.text) not in texts]
    return sample(pool, size, seed)


def gold_knowledge(gold: Sequence[Example], taxonomy: Taxonomy, settings: ClassifierSettings,
                   sure_precision: float = SURE_PRECISION,
                   embedder: Embedder | None = None) -> tuple[Knowledge, dict[str, Any]]:
    """The gold embedded and learned from (no model on the llm route), and its record for the report."""
    unknown = sorted({format_path(None, s) for e in gold for s in e.stems if not taxonomy.is_complete_stem(s)})
    if unknown:
        raise click.BadParameter(f"gold stems missing from the taxonomy: {unknown[:5]}", param_hint="--gold")
    started = time.perf_counter()
    knowledge = build_knowledge(taxonomy, [e.text for e in gold], [e.stems for e in gold],
                                embedder or Embedder(),
                                version="eval", learn=settings.route != "llm",
                                precision=sure_precision)
    model = knowledge.model
    return knowledge, {
        "size": len(gold), "route": settings.route, "sure_precision": sure_precision, "examples": settings.examples,
        "modelled_nodes": len(model.models) if model else 0,
        "levels": {level: vars(t) for level, t in model.levels.items()} if model else None,
        "build_seconds": round(time.perf_counter() - started, 2),
    }


def gold_flags(gold: Sequence[Example], settings: ClassifierSettings, sure_precision: float = SURE_PRECISION,
               embedder: Embedder | None = None) -> tuple[FlagKnowledge | None, dict[str, Any]]:
    """The gold's flag labels (alerts, recommendations, trend) embedded and learned from, per
    capability, and their record for the report."""
    started = time.perf_counter()
    embedder = embedder or Embedder()
    labels = [label for e in gold for label in from_flags(e.text, e.flags)]
    models = {name: flag_model(name, [l for l in labels if l.capability == name], embedder, precision=sure_precision)
              for name in FLAGS if any(l.capability == name for l in labels)}
    record = {name: {"size": len(flag.texts), "positives": int(sum(flag.values)),
                     "levels": {level: vars(t) for level, t in flag.model.levels.items()} if flag.model else None}
              for name, flag in models.items()}
    record.update(route=settings.route, sure_precision=sure_precision,
                  build_seconds=round(time.perf_counter() - started, 2))
    return (FlagKnowledge(models, embedder) if models else None), record


def decided_shares(sources: Sequence[dict[Any, str]]) -> dict[str, float]:
    """The share of accepted nodes each part decided (learned, llm)."""
    counts = Counter(source for per_text in sources for source in per_text.values())
    total = sum(counts.values())
    return {name: counts[name] / total for name in sorted(counts)} if total else {}
