"""What the labels routes do: gold in and out of the store, each change handed to the
learning loop so the next answer reads it. The routes (`labels_router`) stay thin."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import HTTPException

from ..gold.labels import LabelError, checked, to_wire
from ..gold.store import GoldStore
from ..gold.training import Learning
from ..service import ClassificationService, UnknownTaxonomy


class LabelsServing:
    def __init__(self, store: GoldStore, service: ClassificationService, learning: Learning) -> None:
        self.store, self.service, self.learning = store, service, learning

    def _taxonomy(self, name: str | None):  # noqa: ANN202 - a Taxonomy
        try:
            return self.service.taxonomy(name)
        except UnknownTaxonomy as exc:
            raise HTTPException(404, str(exc)) from None

    async def label(self, owner: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store one correction: `{text, paths, polarity?, taxonomy?}`; the same text again replaces it."""
        taxonomy = self._taxonomy(body.get("taxonomy"))
        paths = body.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise HTTPException(422, "paths: give a list of paths like [\"Food>Quality\"] ([] for none of the topics)")
        polarity = body.get("polarity") or {}
        if not isinstance(polarity, dict):
            raise HTTPException(422, "polarity: give an object from path to Positive, Negative, Neutral or Mixed")
        try:
            label = checked(taxonomy, body.get("text"), paths, polarity)
        except LabelError as exc:
            raise HTTPException(422, str(exc)) from None
        added, _ = await asyncio.to_thread(self.store.put, taxonomy.name, [label], source="correction", owner=owner)
        await self.learning.added(taxonomy.name, [label])
        return {"object": "label", "taxonomy": taxonomy.name, **to_wire(label, taxonomy), "created": bool(added)}

    async def labels(self, taxonomy_name: str | None, after: str | None, limit: int) -> dict[str, Any]:
        taxonomy = self._taxonomy(taxonomy_name)
        stored = await asyncio.to_thread(self.store.labels, taxonomy.name, limit=limit + 1, after=after)
        data = [{"object": "label", **to_wire(s.label, taxonomy), "source": s.source, "created_at": int(s.created_at),
                 "updated_at": int(s.updated_at)} for s in stored[:limit]]
        return {"object": "list", "taxonomy": taxonomy.name, "data": data, "has_more": len(stored) > limit,
                "last_id": data[-1]["id"] if data else None}

    async def delete(self, taxonomy_name: str | None, label_id: str) -> dict[str, Any]:
        taxonomy = self._taxonomy(taxonomy_name)
        if not await asyncio.to_thread(self.store.delete, taxonomy.name, label_id):
            raise HTTPException(404, f"no label {label_id!r} in taxonomy {taxonomy.name!r}")
        await self.learning.reload(taxonomy.name)
        return {"object": "label.deleted", "id": label_id, "deleted": True}
