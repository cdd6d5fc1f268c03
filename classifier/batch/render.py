"""The output file, rendered from the journal in row order: json, jsonl, csv or xlsx.

Written to a temporary file and renamed into place, so a reader never sees half a file.
In json and jsonl each object is the service's result for one text (the wire shape of
`POST /classify`) plus `row`, the data row it came from. csv and xlsx are the spreadsheet
of `classifier.report.table`: the input's columns, then one column per taxonomy leaf, the
paths, the polarity per stem, and alerts, recommendations and trends as text, every cell
neutralised against formula injection (`classifier.report.cells`).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from openpyxl import Workbook
from openpyxl.styles import Font

from ..files import atomic_open
from ..report.cells import append_xlsx_row, csv_row
from ..report.table import table
from ..taxonomy import Taxonomy

FORMATS = ("json", "jsonl", "csv", "xlsx")


def _records(results: Mapping[int, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in sorted(results):
        yield {"row": row, **results[row]}


def render(
    results: Mapping[int, dict[str, Any]],
    path: Path,
    output_format: str,
    taxonomy: Taxonomy,
    inputs: Mapping[int, Mapping[str, str]] | None = None,
) -> None:
    """Write the results; `inputs` (row -> the input's columns) feed the spreadsheet formats."""
    if output_format in ("json", "jsonl"):
        with atomic_open(path) as handle:
            if output_format == "json":
                json.dump(list(_records(results)), handle, ensure_ascii=False, indent=1)
            else:
                handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in _records(results))
        return
    inputs = inputs or {}
    header, cells = table(
        [({"row": row, **inputs.get(row, {"text": results[row]["text"]})}, results[row]) for row in sorted(results)],
        taxonomy,
    )
    if output_format == "csv":
        with atomic_open(path, newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(csv_row(header))
            writer.writerows(csv_row(row) for row in cells)
        return
    book = Workbook()
    sheet = book.active
    sheet.title = "comments"
    append_xlsx_row(sheet, header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in cells:
        append_xlsx_row(sheet, row)
    sheet.freeze_panes = "B2"
    with atomic_open(path, "wb") as handle:
        book.save(handle)
