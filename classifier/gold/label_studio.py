"""The Label Studio round trip: a labelling config made from the taxonomy (its `Taxonomy`
control), tasks pre-annotated with the service's results, and Label Studio's JSON export
read back as gold.

Label Studio writes a taxonomy choice as the list of names from the top
(`{"taxonomy": [["Food", "Quality"]]}`); the config lets people pick leaves only, so each
choice is a complete stem.
"""
from __future__ import annotations

import json
from typing import Any, Iterator
from xml.sax.saxutils import quoteattr

from ..capabilities.classification import node_keys
from ..taxonomy import Node, Taxonomy, parse_stem
from .labels import Label, LabelError, checked

FROM_NAME, TO_NAME = "topics", "text"


class LabelStudioError(ValueError):
    """A file that is not what Label Studio or the service writes; the message says where."""


def labelling_config(taxonomy: Taxonomy) -> str:
    """The `<View>` Label Studio needs: the comment, and the tree as a leaves-only Taxonomy."""

    def choices(node: Node, depth: int) -> Iterator[str]:
        pad = "  " * depth
        for child in node.children:
            if child.is_leaf:
                yield f"{pad}<Choice value={quoteattr(child.name)}/>"
            else:
                yield f"{pad}<Choice value={quoteattr(child.name)}>"
                yield from choices(child, depth + 1)
                yield f"{pad}</Choice>"

    return "\n".join([
        "<View>",
        f'  <Text name="{TO_NAME}" value="$text"/>',
        f'  <Taxonomy name="{FROM_NAME}" toName="{TO_NAME}" leafsOnly="true" showFullPath="true">',
        *choices(taxonomy.root, 2),
        "  </Taxonomy>",
        "</View>",
    ])


def _results(content: str) -> Iterator[dict[str, Any]]:
    """The per-text results in a job's output file (JSONL of responses) or batch_classify's
    output (a JSON list, or JSONL, of results)."""
    try:
        whole = json.loads(content)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        yield from whole
        return
    for line_no, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelStudioError(f"results line {line_no} is not JSON: {exc.msg}") from None
        if "response" in record:  # a job's output line
            yield from ((record["response"] or {}).get("body") or {}).get("results", [])
        else:
            yield record


def tasks_from_results(content: str, taxonomy: Taxonomy, model_version: str) -> list[dict[str, Any]]:
    """One task per classified text, its complete stems as a prediction scored by the lowest
    probability along them (the model's certainty of the whole answer)."""
    tasks = []
    for result in _results(content):
        if not isinstance(result, dict) or not isinstance(result.get("text"), str):
            raise LabelStudioError("a result without its text: give a job's output file or batch_classify's output")
        found = result.get("classification_result") or {}
        paths = [parse_stem(p)[1:] for p in found.get("classification_paths", [])]  # drop the root or project name
        stems = [p for p in paths if taxonomy.is_complete_stem(p)]
        answers = found.get("node_results", {})
        scores = [answers.get(key, {}).get("probability") for key in node_keys(paths).values()]
        known = [s for s in scores if s is not None]
        score = min(known) if known else None
        value = {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "taxonomy",
                 "value": {"taxonomy": [list(stem) for stem in stems]}}
        tasks.append({"data": {"text": result["text"]},
                      "predictions": [{"model_version": model_version, "score": score,
                                       "result": [{**value, "score": score}] if stems else []}]})
    return tasks


def read_export(export: Any, taxonomy: Taxonomy) -> list[Label]:
    """Gold from Label Studio's JSON export: each task's latest annotation that was not
    cancelled (tasks nobody annotated are skipped). `LabelError` names the task and path."""
    if not isinstance(export, list):
        raise LabelStudioError("a Label Studio JSON export is a list of tasks (Export -> JSON)")
    labels = []
    for position, task in enumerate(export, start=1):
        if not isinstance(task, dict):
            raise LabelStudioError(f"task {position} of the export is not an object; give Label Studio's JSON export")
        name = f"Label Studio task {task.get('id', f'at position {position}')}"
        if not isinstance(task.get("annotations"), list):
            raise LabelStudioError(f"{name} has no annotations list (a JSON-MIN or CSV export?): export as JSON")
        annotations = [a for a in task["annotations"] if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            continue
        latest = max(annotations, key=lambda a: (a.get("updated_at") or "", a.get("id") or 0))
        results = latest.get("result") or []
        other = next((item.get("type") for item in results if item.get("type") != "taxonomy"), None)
        if other is not None:
            raise LabelStudioError(f"{name}: a result of type {other!r} cannot be read as topics; label with the "
                                   "Taxonomy config of `python -m classifier.gold label-config`")
        chosen = [path for item in results for path in item.get("value", {}).get("taxonomy", [])]
        try:
            labels.append(checked(taxonomy, (task.get("data") or {}).get("text"), [">".join(p) for p in chosen]))
        except LabelError as exc:
            raise LabelError(f"Label Studio task {task.get('id', '?')}: {exc}") from None
    return labels
