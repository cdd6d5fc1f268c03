"""The `classification` capability: the hierarchical walk, rendered in the prototype's shape."""
from __future__ import annotations

from ..hierarchy import HierarchicalClassifier, TextClassification
from ..taxonomy import NodePath, format_path
from .base import Capability, Outcome, RunContext


class Classification(Capability):
    name = "classification"
    result_key = "classification_result"

    def empty(self) -> dict:
        return {"classification_paths": [], "node_results": {}}

    async def run(self, ctx: RunContext, indices: list[int]) -> dict[int, Outcome]:
        walker = HierarchicalClassifier(ctx.processor, ctx.settings)
        found = await walker.classify([ctx.texts[i] for i in indices], ctx.taxonomy)
        outcomes = {}
        for i, result in zip(indices, found):
            ctx.classifications[i] = result
            outcomes[i] = Outcome(
                value={
                    "classification_paths": [format_path(ctx.prefixes[i], p) for p in result.accepted],
                    "node_results": node_results(result),
                },
                errors=result.errors,
                truncated=result.truncated,
            )
        return outcomes


def node_results(result: TextClassification) -> dict[str, dict]:
    """Answers keyed by node name, as the prototype keyed them. Names that occur twice in
    one text's paths (`General` under two parents) are keyed by their stem instead."""
    names = [p[-1] for p in result.accepted]

    def key(path: NodePath) -> str:
        return path[-1] if names.count(path[-1]) == 1 else format_path(None, path)

    return {key(p): result.node_results[p] for p in result.accepted}
