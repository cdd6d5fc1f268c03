"""The distilled route's phases over one file: teaching (the LLM answers the sample), training
(silver labels into learned models, installed in the service) and answering (the rest through
the cascade). What a phase answers goes through the caller's `answer`, which keeps it (the
batch journal, a job's lines): a rerun after a crash finds the sample's answers there, so the
LLM is never asked twice, and retrains in seconds from them."""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Sequence

import numpy as np

from ..capabilities import CAPABILITIES
from ..gold import OPERATOR
from ..gold.embedder import Embedder
from ..gold.flag_labels import FLAGS
from ..gold.learned import positives
from ..prompts import describe_node
from ..service import ClassificationService
from ..settings import DistillSettings
from ..taxonomy import Taxonomy
from .doubt import least_sure
from .sample import covering, near, sample_size
from .silver import Silver, read_silver, taught
from .teacher import SurelyNot

TEACHING, TRAINING, ANSWERING = "teaching", "training", "answering"
# (rows, phase, route): classify them on `route` (None: the service's) and keep the answers.
Answer = Callable[[Sequence[int], str, "str | None"], Awaitable[None]]


@dataclass
class Distilled:
    """What the route did, for the run's summary and a job's record."""

    comments: int
    sampled: int = 0  # comments the LLM answered to teach (the covering draw and the floor's)
    escalated: int = 0  # comments past the sample the learned models doubted most, left to the cascade
    floor: int = 0  # of those, drawn near nodes and flags the first draw showed too rarely
    silver: int = 0  # answered sample comments the models learned from
    # Per task taught, what came of it: "learned" (a model), "surely not" (a flag too rare for one,
    # `teacher`), or "" (nothing: the LLM answers it).
    models: dict[str, str] = field(default_factory=dict)
    llm_only: str = ""  # why the LLM answered every comment, where it did


def answered_by(result: Mapping[str, Any]) -> str:
    """Who answered a comment: "llm" where the LLM was asked anything about it (a topic, a stem's
    polarity, a flag's decision or its details), else "learned"; "skipped" (empty) or "failed"."""
    if "error" in result:
        return "failed"
    if "skipped" in result:
        return "skipped"
    classification = result.get("classification_result")
    if classification is not None and classification.get("source", "llm") == "llm":
        return "llm"
    if any(stem.get("source", "llm") == "llm" for stem in result.get("stem_polarity", {}).values()):
        return "llm"
    for name, capability in CAPABILITIES.items():
        value = result.get(capability.result_key)
        if name in FLAGS and value:
            if value.get("source", "llm") == "llm" or value[capability.details.flag]:  # type: ignore[attr-defined]
                return "llm"  # decided by it, or detailed by it
        elif name not in ("classification", "stem_polarity") and value:
            return "llm"  # the stem flags always ask it
    return "learned"


def shares(results: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """How many comments each part answered (`answered_by`)."""
    return Counter(answered_by(result) for result in results)


async def distill(service: ClassificationService, embedder: Embedder, taxonomy: Taxonomy, texts: Mapping[int, str],
                  results: Mapping[int, Mapping[str, Any]], capabilities: Sequence[str], settings: DistillSettings,
                  answer: Answer, *, prefix: str | None = None, owner: str = OPERATOR,
                  on_phase: Callable[[str, str], None] = lambda phase, detail: None) -> Distilled:
    """Answer every row of `texts` not answered yet in `results` (the caller's record, which
    `answer` keeps current), on the distilled route. The learned models serve `owner`'s texts
    (the batch command: the operator; a job: a key of its own, which the caller drops after)."""
    rows = sorted(texts)
    report = Distilled(len(rows))
    thresholds = {name: flag.min_probability for name, flag in service.settings.flags.items()}

    def pending(chosen: Sequence[int]) -> list[int]:
        return [row for row in chosen if "error" in results.get(row, {"error": "not answered"})]

    if len(rows) < settings.min_comments:
        report.llm_only = (f"{len(rows)} comments are too few to learn from (fewer than {settings.min_comments}): "
                           "the LLM answers every one")
        on_phase(ANSWERING, report.llm_only)
        await answer(pending(rows), ANSWERING, None)
        return report
    vectors = await asyncio.to_thread(embedder.embed, [texts[row] for row in rows])
    size = sample_size(len(rows), settings.sample)
    chosen = covering(vectors, size, settings.seed)
    on_phase(TEACHING, f"the LLM answers {len(chosen)} comments drawn to cover the file")
    await answer(pending([rows[k] for k in chosen]), TEACHING, None)
    silver = _silver(results, rows, chosen, vectors, taxonomy, prefix, capabilities, settings, thresholds)
    short = await asyncio.to_thread(_short, silver, taxonomy, embedder, settings.floor)
    extra = near(vectors, short, set(chosen), size // 2)
    if extra:
        on_phase(TEACHING, f"the LLM answers {len(extra)} more comments near topics and flags the sample shows "
                           f"fewer than {settings.floor} times")
        await answer(pending([rows[k] for k in extra]), TEACHING, None)
        chosen = sorted({*chosen, *extra})
        silver = _silver(results, rows, chosen, vectors, taxonomy, prefix, capabilities, settings, thresholds)
    report.sampled, report.floor, report.silver = len(chosen), len(extra), len(silver.texts)
    on_phase(TRAINING, f"learning from the LLM's answers on {len(silver.texts)} comments")
    knowledge, flags = await asyncio.to_thread(taught, silver, taxonomy, embedder, thresholds)
    if knowledge is not None:
        service.knowledge[(taxonomy.name, owner)] = knowledge
        report.models["topics"] = "learned" if knowledge.model is not None else ""
        report.models["polarity"] = "learned" if knowledge.polarity is not None else ""
    if flags is not None:
        service.flag_knowledge[owner] = flags
        report.models.update({name: "learned" if model.model is not None else
                              "surely not" if isinstance(model, SurelyNot) else "" for name, model in flags.models.items()})
    taken = set(chosen)
    rest = [k for k in range(len(rows)) if k not in taken]
    doubted = {rest[k] for k in least_sure(vectors[rest], knowledge, flags, settings.escalate)}
    report.escalated = len(doubted)
    sure = pending([rows[k] for k in rest if k not in doubted])
    on_phase(ANSWERING, f"the learned models answer {len(sure)} comments alone, and with the LLM the "
                        f"{len(doubted)} they doubt most")
    await answer(sure, ANSWERING, "learned")
    await answer(pending([rows[k] for k in sorted(doubted)]), ANSWERING, "cascade")
    return report


def _silver(results: Mapping[int, Mapping[str, Any]], rows: Sequence[int], chosen: Sequence[int],
            vectors: np.ndarray, taxonomy: Taxonomy, prefix: str | None, capabilities: Sequence[str],
            settings: DistillSettings, thresholds: Mapping[str, float]) -> Silver:
    """The sample's answers as silver labels (a row still failing is left out)."""
    answered = [results.get(rows[k], {"error": "not answered"}) for k in chosen]
    return read_silver(answered, vectors[list(chosen)], taxonomy, prefix, capabilities,
                       sure_only=settings.labels == "sure", thresholds=thresholds)


def _short(silver: Silver, taxonomy: Taxonomy, embedder: Embedder, floor: int) -> dict[str, tuple[np.ndarray, int]]:
    """Each node and flag the silver shows fewer than `floor` times: a unit vector near what it is
    about (the mean of the comments that show it, else its own words embedded) and how many it lacks."""
    wanted: dict[str, tuple[list[int], str]] = {}
    if silver.stems is not None:
        stems = [s or frozenset() for s in silver.stems]
        for path, node in taxonomy.nodes():
            name = ">".join(path)
            wanted[name] = (np.flatnonzero(positives(stems, path)).tolist(), describe_node(node, "", name))
    for name, values in silver.flags.items():
        words = "A comment about " + ", ".join(CAPABILITIES[name].sorting.found)  # type: ignore[attr-defined]
        wanted[f"flag:{name}"] = ([k for k, value in enumerate(values) if value], words)
    short = {name: pair for name, pair in wanted.items() if len(pair[0]) < floor}
    described = [name for name, (found, _) in short.items() if not found]
    spoken = dict(zip(described, embedder.embed([short[name][1] for name in described]))) if described else {}
    queries = {}
    for name, (found, _) in short.items():
        query = silver.vectors[found].mean(axis=0) if found else spoken[name]
        queries[name] = (query / max(float(np.linalg.norm(query)), 1e-9), floor - len(found))
    return queries
