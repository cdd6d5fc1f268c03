"""What the labels routes do: an owner's labels in and out of the store, each change handed to
the learning loop so that owner's next answer reads it. A key sees and changes its own labels
and sees the operator's (read-only); never another key's. The routes (`labels_router`) stay thin."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import HTTPException

from ..gold import OPERATOR
from ..gold.embedder import EmbedderMissing
from ..gold.labels import LabelError, checked, to_wire
from ..gold.store import GoldStore
from ..gold.training import Learning, QuotaExceeded
from ..service import ClassificationService, UnknownTaxonomy
from ..taxonomy import Taxonomy
from .protocol import LabelRequest


class LabelsServing:
    def __init__(self, store: GoldStore, service: ClassificationService, learning: Learning,
                 max_text_chars: int) -> None:
        self.store, self.service, self.learning, self.max_text_chars = store, service, learning, max_text_chars

    def _taxonomy(self, name: str | None) -> Taxonomy:
        try:
            return self.service.taxonomy(name)
        except UnknownTaxonomy as exc:
            raise HTTPException(404, str(exc)) from None

    async def label(self, owner: str, body: LabelRequest) -> dict[str, Any]:
        """Store one correction of `owner`'s; the same text again replaces it."""
        taxonomy = self._taxonomy(body.taxonomy)
        if len(body.text) > self.max_text_chars:
            raise HTTPException(413, f"text: {len(body.text)} characters; a label's text may have at most "
                                     f"{self.max_text_chars} (--max-text-chars), as a comment to classify")
        try:
            label = checked(taxonomy, body.text, body.paths, body.polarity)
            added = await self.learning.add(taxonomy.name, owner, [label], source="correction")
        except LabelError as exc:
            raise HTTPException(422, str(exc)) from None
        except QuotaExceeded as exc:
            raise HTTPException(409, str(exc)) from None
        except EmbedderMissing as exc:
            raise HTTPException(503, f"labels cannot be used on this server: {exc}") from None
        return {"object": "label", "taxonomy": taxonomy.name, **to_wire(label, taxonomy), "created": bool(added)}

    async def labels(self, owner: str, taxonomy_name: str | None, after: str | None, limit: int) -> dict[str, Any]:
        """The labels that answer `owner`: its own, and the operator's (`shared`, read-only)."""
        taxonomy = self._taxonomy(taxonomy_name)
        stored = await asyncio.to_thread(self.store.view, taxonomy.name, owner, limit=limit + 1, after=after)
        data = [{"object": "label", **to_wire(s.label, taxonomy), "source": s.source, "shared": s.shared,
                 "created_at": int(s.created_at), "updated_at": int(s.updated_at)} for s in stored[:limit]]
        return {"object": "list", "taxonomy": taxonomy.name, "data": data, "has_more": len(stored) > limit,
                "last_id": data[-1]["id"] if data else None}

    async def delete(self, owner: str, taxonomy_name: str | None, label_id: str) -> dict[str, Any]:
        """Delete one of `owner`'s labels: gone from its answers at once."""
        taxonomy = self._taxonomy(taxonomy_name)
        if await self.learning.remove(taxonomy.name, owner, label_id):
            return {"object": "label.deleted", "id": label_id, "deleted": True}
        if owner != OPERATOR and await asyncio.to_thread(self.store.get, taxonomy.name, OPERATOR, label_id):
            raise HTTPException(403, f"label {label_id!r} was imported by the operator and is read-only here; "
                                     "label the same text yourself to have it answered otherwise")
        raise HTTPException(404, f"no label {label_id!r} of yours in taxonomy {taxonomy.name!r}")
