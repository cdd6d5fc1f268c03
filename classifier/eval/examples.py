"""`python -m classifier.eval.examples`: a copy of a taxonomy file whose nodes carry example
comments drawn from labelled data (few-shot examples the model sees beside each definition).

    .venv/bin/python -m classifier.eval.examples --data ../shared/data/semeval16_restaurants_train.csv \
        --kind semeval --config configs/restaurants.json --exclude-sample 200 --exclude-seed 42 \
        --out configs/restaurants.examples.json

Examples are drawn only from texts outside the evaluation sample named by `--exclude-sample`
and `--exclude-seed`, so a run on that sample is never shown its own texts.
"""
from __future__ import annotations

import json
import random
from itertools import zip_longest
from pathlib import Path
from typing import Any, Sequence

import click

from ..cli import USER_ERRORS
from ..taxonomy import NodePath, Taxonomy, load_taxonomy
from .gold import LOADERS, Example, excluding


def pick_examples(examples: Sequence[Example], taxonomy: Taxonomy, *, per_node: int, max_words: int,
                  seed: int) -> dict[NodePath, list[str]]:
    """Per node, up to `per_node` short texts about that node alone: for a leaf, texts whose
    gold is exactly that stem; for an inner node, texts whose every gold stem lies under it,
    each from another child where it can. Shorter than `max_words` words, drawn with `seed`."""
    pool = [e for e in sorted(examples, key=lambda e: e.id) if e.stems and len(e.text.split()) <= max_words]
    random.Random(seed).shuffle(pool)
    picks: dict[NodePath, list[str]] = {}
    for path, node in taxonomy.nodes():
        about = [e for e in pool if all(stem[: len(path)] == path for stem in e.stems)]
        if node.is_leaf:
            about = [e for e in about if e.stems == frozenset({path})]
        by_child: dict[NodePath, list[str]] = {}
        for e in about:
            by_child.setdefault(min(e.stems)[: len(path) + 1], []).append(e.text)
        # Round robin over the children the texts go through, so one child does not take all.
        in_turn = (text for turn in zip_longest(*by_child.values()) for text in turn if text)
        if chosen := list(dict.fromkeys(in_turn))[:per_node]:
            picks[path] = chosen
    return picks


def with_examples(raw: dict[str, Any], picks: dict[NodePath, list[str]]) -> dict[str, Any]:
    """The taxonomy file's JSON with each picked node's `examples` set (other fields kept)."""

    def visit(node: dict[str, Any], path: NodePath) -> dict[str, Any]:
        out = {k: v for k, v in node.items() if k != "children"}
        if path in picks:
            out["examples"] = picks[path]
        if node.get("children"):
            out["children"] = [visit(child, path + (child["name"],)) for child in node["children"]]
        return out

    return visit(raw, ())


@click.command(context_settings={"show_default": True, "max_content_width": 100})
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled CSV to draw examples from.")
@click.option("--kind", required=True, type=click.Choice(sorted(LOADERS)), help="The CSV's column layout.")
@click.option("--config", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Taxonomy file whose node names the labels follow.")
@click.option("--exclude-sample", default=0, help="Leave out the evaluation sample of this size drawn from --data.")
@click.option("--exclude-seed", default=42, help="Seed of that evaluation sample.")
@click.option("--per-node", default=2, help="Examples per node.")
@click.option("--max-words", default=20, help="Longest example, in words.")
@click.option("--seed", default=0, help="Seed of the draw.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Taxonomy file to write.")
def main(data: Path, kind: str, config: Path, exclude_sample: int, exclude_seed: int, per_node: int,
         max_words: int, seed: int, out: Path) -> None:
    """Write a copy of --config whose nodes carry example comments from --data."""
    try:
        taxonomy = load_taxonomy(config)
        labelled = LOADERS[kind](data)
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc
    pool = excluding(labelled, exclude_sample, exclude_seed)
    picks = pick_examples(pool, taxonomy, per_node=per_node, max_words=max_words, seed=seed)
    raw = json.loads(config.read_text(encoding="utf-8"))
    out.write_text(json.dumps(with_examples(raw, picks), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"{out}: {sum(map(len, picks.values()))} examples on {len(picks)} nodes, "
               f"none from the {len(labelled) - len(pool)} texts of the evaluation sample")


if __name__ == "__main__":
    main()
