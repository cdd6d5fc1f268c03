"""Silver labels: the LLM's answers on a distilled route's sample, read back from the results it
wrote, and what they teach (the same learned models the customer's gold teaches, named
`silver` in the answers they give, and never stored with the gold)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..capabilities import CAPABILITIES
from ..gold.embedder import Embedder
from ..gold.flag_labels import FLAGS
from ..gold.flag_models import FlagKnowledge, FlagModel, train_flag
from ..gold.knowledge import Knowledge, learned_from
from ..gold.labels import taxonomy_version
from ..taxonomy import NodePath, Taxonomy, parse_stem
from .teacher import surely_not

SILVER = "silver"  # the source answers name a decision by when it is a sampled comment's answer
SURE = 0.7  # with labels "sure": the probability every topic of a kept comment had at least


@dataclass(frozen=True)
class Silver:
    """Per sampled comment that was answered: its text, embedding and what the LLM said of it."""

    texts: list[str]
    vectors: np.ndarray
    # Per comment, its topics; None where they teach nothing (labels "sure" and the LLM was not).
    # The list is None when classification did not run, as polarity is when stem polarity did not.
    stems: list[frozenset[NodePath] | None] | None
    polarity: list[dict[NodePath, str]] | None
    flags: dict[str, list[bool | None]]  # per flag capability run: its decision (None: left out, unsure)
    probabilities: dict[str, list[float | None]]  # per flag capability run: the LLM's probability, where given


def read_silver(results: Sequence[Mapping[str, Any]], vectors: np.ndarray, taxonomy: Taxonomy,
                prefix: str | None, capabilities: Sequence[str], *, sure_only: bool = False,
                thresholds: Mapping[str, float] | None = None) -> Silver:
    """The answered comments among `results` (rows with an error or skipped are left out),
    their `vectors` alongside. With `sure_only`, a comment's topics teach only where the LLM
    gave every topic it accepted at least `SURE`, and a flag only where its probability is
    nearer 0 or 1 than its threshold (`thresholds`) by half the way."""
    kept = [k for k, result in enumerate(results) if "error" not in result and "skipped" not in result]
    answered = [results[k] for k in kept]
    root = prefix or taxonomy.root.name
    stems = None
    if "classification" in capabilities:
        stems = [None if sure_only and _unsure(r["classification_result"]) else _stems(r["classification_result"], root)
                 for r in answered]
    polarity = [{parse_stem(name): value["polarity"] for name, value in r.get("stem_polarity", {}).items()}
                for r in answered] if "stem_polarity" in capabilities else None
    flags = {name: [_flag(name, r, sure_only, (thresholds or {}).get(name, 0.5)) for r in answered]
             for name in FLAGS if name in capabilities}
    probabilities = {name: [(r.get(CAPABILITIES[name].result_key) or {}).get("probability") for r in answered]
                     for name in flags}
    return Silver([r["text"] for r in answered], vectors[kept], stems, polarity, flags, probabilities)


def _unsure(classification: Mapping[str, Any]) -> bool:
    """Some topic was accepted with a probability below `SURE`."""
    return any(node.get("probability") is not None and node["probability"] < SURE
               for node in classification["node_results"].values())


def _stems(classification: Mapping[str, Any], root: str) -> frozenset[NodePath]:
    """The deepest paths the answer accepted (complete stems, or an inner node none of whose
    children it accepted), below `root`."""
    paths = [parse_stem(p)[1:] for p in classification["classification_paths"] if p.startswith(root + ">")]
    return frozenset(p for p in paths if not any(q != p and q[: len(p)] == p for q in paths))


def _flag(capability: str, result: Mapping[str, Any], sure_only: bool, threshold: float) -> bool | None:
    value = result.get(CAPABILITIES[capability].result_key)
    if not value:
        return None
    found = bool(value[CAPABILITIES[capability].details.flag])  # type: ignore[attr-defined]
    p = value.get("probability")
    if sure_only and p is not None and threshold / 2 < p < (1 + threshold) / 2:
        return None
    return found


def taught(silver: Silver, taxonomy: Taxonomy, embedder: Embedder,
           thresholds: Mapping[str, float] | None = None) -> tuple[Knowledge | None, FlagKnowledge | None]:
    """Blocking: the taxonomy's knowledge (topics and polarity) and the flags' models learned from
    the silver labels, as the gold's would be; a flag too rare in them for a model gets one that
    says only "surely not" (`teacher`), judged against its threshold in `thresholds`."""
    knowledge = None
    if silver.stems is not None:
        rows = [k for k, stems in enumerate(silver.stems) if stems is not None]
        knowledge = learned_from(taxonomy, [silver.texts[k] for k in rows],
                                 [silver.stems[k] for k in rows],  # type: ignore[misc]
                                 silver.vectors[rows], embedder, taxonomy_version(taxonomy),
                                 polarities=[silver.polarity[k] for k in rows] if silver.polarity else None,
                                 source=SILVER)
    models = {}
    for name, values in silver.flags.items():
        rows = [k for k, value in enumerate(values) if value is not None]
        known = [bool(values[k]) for k in rows]
        model = train_flag(name, known, silver.vectors[rows]) if rows else None
        rare = surely_not(silver.vectors, silver.probabilities[name], (thresholds or {}).get(name, 0.5), "learned") \
            if model is None else None
        models[name] = rare or FlagModel([silver.texts[k] for k in rows], known, silver.vectors[rows], model, SILVER)
    return knowledge, (FlagKnowledge(models, embedder) if models else None)
