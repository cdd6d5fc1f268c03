"""One row per comment, for a spreadsheet: the input's own columns, then one column per
taxonomy leaf (1/0, or the probability where the model's probabilities were read), the
paths, the polarity per stem, and alerts, recommendations and trends flattened to text."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..taxonomy import Taxonomy, format_path
from .summary import stem_of

PATH_SEPARATOR_IN_CELL = " | "
ITEM_SEPARATOR = "; "


def _leaf_value(result: Mapping[str, Any], stem: str, found: set[str]) -> float | int:
    if stem not in found:
        return 0
    nodes = (result.get("classification_result") or {}).get("node_results", {})
    node = nodes.get(stem) or nodes.get(stem.rsplit(">", 1)[-1]) or {}
    return node.get("probability", 1)


def _flat(items: Sequence[Mapping[str, Any]], *keys: str, quote: str = "") -> str:
    return ITEM_SEPARATOR.join(
        " ".join(str(item[k]) for k in keys) + (f": {item[quote]}" if quote and item.get(quote) else "") for item in items
    )


def table(
    rows: Sequence[tuple[Mapping[str, str], Mapping[str, Any]]], taxonomy: Taxonomy
) -> tuple[list[str], list[list[Any]]]:
    """Header and cells for (input record, result) pairs, in the order given."""
    inputs = list(rows[0][0]) if rows else []
    leaves = [format_path(None, path) for path in taxonomy.leaf_paths()]
    with_polarity = any("stem_polarity" in result for _, result in rows)
    header = [*inputs, *leaves, "classification_paths", *(f"polarity: {s}" for s in leaves if with_polarity),
              "alerts", "recommendations", "stem_recommendations", "trends", "error", "skipped", "truncated"]
    cells = []
    for record, result in rows:
        paths = (result.get("classification_result") or {}).get("classification_paths", [])
        found = {stem_of(p) for p in paths}
        polarity = result.get("stem_polarity") or {}
        trends = list((result.get("trends") or {}).get("trends", []))
        trends += [t for listed in (result.get("stem_trends") or {}).values() for t in listed]
        stem_recommendations = ITEM_SEPARATOR.join(
            f"{stem}: {_flat(answer.get('recommendations', []), 'recommendation_type', quote='paraphrased_recommendation')}"
            for stem, answer in (result.get("stem_recommendations") or {}).items() if answer.get("recommendations")
        )
        cells.append([
            *(record.get(name, "") for name in inputs),
            *(_leaf_value(result, stem, found) for stem in leaves),
            PATH_SEPARATOR_IN_CELL.join(paths),
            *((polarity.get(stem) or {}).get("polarity", "") for stem in leaves if with_polarity),
            _flat((result.get("alerts") or {}).get("alerts", []), "severity", "alert_type", quote="excerpt"),
            _flat((result.get("recommendations") or {}).get("recommendations", []), "qualifier",
                  quote="paraphrased_recommendation"),
            stem_recommendations,
            _flat(trends, "direction", "subject"),
            result.get("error", ""), result.get("skipped", ""), bool(result.get("truncated")),
        ])  # fmt: skip
    return header, cells
