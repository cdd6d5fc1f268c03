"""Classifying the rows that are not done yet, one chunk per service call, into the journal."""
from __future__ import annotations

from collections import Counter
from typing import Callable, Mapping, Sequence

from ..llm.pool import ProcessorPool
from ..service import ClassificationService
from ..settings import Settings
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
) -> None:
    """Start the backend, then classify `todo` (row numbers) chunk by chunk; every chunk is
    in the journal, synced, before `on_chunk` reports it."""
    pool = ProcessorPool(settings.engine)
    await pool.start()
    try:
        on_started(pool.processor.model)
        service = ClassificationService(pool.processor, {taxonomy.name: taxonomy}, settings.classifier)
        for start in range(0, len(todo), chunk_size):
            rows = todo[start : start + chunk_size]
            body = await service.classify([texts[row] for row in rows], capabilities, project_name)
            journal.append(zip(rows, body["results"]))
            on_chunk(len(rows))
    finally:
        await pool.close()


def top_paths(results: Mapping[int, dict], count: int) -> list[tuple[str, int]]:
    """The most frequent classification paths over all results."""
    paths = Counter(
        path for result in results.values() for path in result.get("classification_result", {}).get("classification_paths", ())
    )
    return paths.most_common(count)
