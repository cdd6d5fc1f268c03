"""The output file, rendered from the journal in row order: json, jsonl or csv.

Written to a temporary file and renamed into place, so a reader never sees half a file.
Each object is the service's result for one text (the wire shape of `POST /classify`)
plus `row`, the data row it came from, for joining back to the input.
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

FORMATS = ("json", "jsonl", "csv")
PATH_SEPARATOR_IN_CSV = " | "


def _records(results: Mapping[int, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in sorted(results):
        yield {"row": row, **results[row]}


def _csv_rows(results: Mapping[int, dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """One column per result key; classification paths joined, other objects as JSON text."""
    columns = ["row", "text", "classification_paths"]
    rows = []
    for record in _records(results):
        flat: dict[str, Any] = {}
        for key, value in record.items():
            if key == "classification_result":
                flat["classification_paths"] = PATH_SEPARATOR_IN_CSV.join(value["classification_paths"])
                value = value["node_results"]
                key = "node_results"
            flat[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value, ensure_ascii=False)
            if key not in columns:
                columns.append(key)
        rows.append(flat)
    return columns, rows


def render(results: Mapping[int, dict[str, Any]], path: Path, output_format: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=path.parent,
                                         prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            if output_format == "json":
                json.dump(list(_records(results)), handle, ensure_ascii=False, indent=1)
            elif output_format == "jsonl":
                handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in _records(results))
            else:
                columns, rows = _csv_rows(results)
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
