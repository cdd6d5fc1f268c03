"""Classifying the rows that are not done yet, one chunk per service call, into the journal."""
from __future__ import annotations

from collections import Counter
from typing import Callable, Mapping, Sequence

from ..distill.route import Distilled, distill
from ..gold.embedder import Embedder
from ..llm.pool import ProcessorPool
from ..service import ClassificationService
from ..settings import DistillSettings, Settings
from ..taxonomy import Taxonomy
from .journal import Journal


async def classify_rows(
    settings: Settings,
    taxonomy: Taxonomy,
    texts: Mapping[int, str],
    todo: Sequence[int],
    capabilities: Sequence[str],
    journal: Journal,
    *,
    chunk_size: int,
    project_name: str | None = None,
    on_started: Callable[[str], None],
    on_chunk: Callable[[int], None],
    distilled: DistillSettings | None = None,
    on_phase: Callable[[str, str], None] = lambda phase, detail: None,
) -> Distilled | None:
    """Start the backend, then classify `todo` (row numbers) chunk by chunk; every chunk is
    in the journal, synced, before `on_chunk` reports it. With `distilled`, every row of
    `texts` not in the journal yet goes the distilled route (`classifier.distill`), whose
    record this returns."""
    pool = ProcessorPool(settings.engine)
    await pool.start()
    try:
        on_started(pool.processor.model)
        service = ClassificationService(pool.processor, {taxonomy.name: taxonomy}, settings.classifier)

        async def answer(rows: Sequence[int], phase: str = "", route: str | None = None) -> None:
            for start in range(0, len(rows), chunk_size):
                chunk = rows[start : start + chunk_size]
                body = await service.classify([texts[row] for row in chunk], capabilities, project_name, route=route)
                journal.append(zip(chunk, body["results"]))
                on_chunk(len(chunk))

        if distilled is None:
            await answer(todo)
            return None
        return await distill(service, Embedder(), taxonomy, texts, journal.results, capabilities, distilled, answer,
                             prefix=project_name, on_phase=on_phase)
    finally:
        await pool.close()


def top_paths(results: Mapping[int, dict], count: int) -> list[tuple[str, int]]:
    """The most frequent classification paths over all results."""
    paths = Counter(
        path for result in results.values() for path in result.get("classification_result", {}).get("classification_paths", ())
    )
    return paths.most_common(count)
