"""batch_classify.py without an engine: CSV reading, the journal, the output formats, and
resume after an interruption, over a scripted processor (the real-engine run is in
test_batch_cli.py)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

import batch_classify
from classifier.batch.inputs import InputError, read_rows
from classifier.batch.journal import Journal, JournalMismatch
from classifier.calibration import Calibration, ProbabilityMap, save_calibration
from classifier.batch.render import render
from classifier.taxonomy import taxonomy_from_dict
from tests.scripted import ScriptedProcessor, oracle
from tests.test_service import GOLD, RUSHED, capability_answers
from tests.trees import TRAINING

META = {"input": "in.csv", "capabilities": ["classification"]}


def test_reads_cp1252_semicolons_and_skips_empty_rows(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("id;comment\n1;Caf\xe9 was cold\n2;   \n3;\n4;Great\n".encode("cp1252"))
    rows = read_rows(path, "comment")
    assert (rows.encoding, rows.delimiter, rows.total) == ("cp1252", ";", 4)
    assert rows.texts == {1: "Caf\u00e9 was cold", 4: "Great"} and rows.skipped == [2, 3]


def test_reads_utf8_with_bom_and_quoted_newlines(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes('\ufefftext,n\n"two\nlines",1\nplain,2\n'.encode("utf-8"))
    rows = read_rows(path, "text")
    assert rows.encoding == "utf-8 (with BOM)" and rows.texts == {1: "two\nlines", 2: "plain"}


def test_a_missing_column_lists_the_columns_that_exist(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("Text,score\nhi,1\n")
    with pytest.raises(InputError, match=r"column 'text' is not in .*; its columns are: Text, score; did you mean 'Text'\?"):
        read_rows(path, "text")
    with pytest.raises(InputError, match="does not exist"):
        read_rows(tmp_path / "nope.csv", "text")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="is empty: expected a header row"):
        read_rows(tmp_path / "empty.csv", "text")


def test_journal_survives_a_torn_last_line_and_refuses_other_runs(tmp_path):
    path = tmp_path / "out.json.journal.jsonl"
    first = Journal(path, META)
    first.open(resume=True)
    first.append([(1, {"text": "a"}), (2, {"text": "b", "error": "x"})])
    with path.open("a") as handle:
        handle.write('{"row": 3, "result": {"te')  # killed mid-write
    again = Journal(path, META)
    again.open(resume=True)
    assert again.results == {1: {"text": "a"}, 2: {"text": "b", "error": "x"}}
    again.append([(2, {"text": "b"})])  # the retry wins
    last = Journal(path, META)
    last.open(resume=True)
    assert last.results == {1: {"text": "a"}, 2: {"text": "b"}}
    assert all(json.loads(line) for line in path.read_text().splitlines())
    with pytest.raises(JournalMismatch, match=r"capabilities: \['classification'\] then, \['alerts'\] now"):
        Journal(path, {**META, "capabilities": ["alerts"]}).open(resume=True)
    fresh = Journal(path, {**META, "capabilities": ["alerts"]})
    fresh.open(resume=False)
    assert fresh.results == {} and len(path.read_text().splitlines()) == 1


def test_render_writes_every_format_in_row_order(tmp_path):
    tree = taxonomy_from_dict({"name": "R", "children": [{"name": "A", "children": [{"name": "B"}, {"name": "C"}]}]})
    results = {
        2: {"text": "b", "classification_result": {"classification_paths": ["R>A", "R>A>B"], "node_results": {}},
            "alerts": {"has_alerts": True, "alerts": [
                {"excerpt": "x", "reasoning": "", "alert_type": "fraud", "severity": "high"}]},
            "stem_polarity": {"A>B": {"polarity": "Negative", "confidence": 4, "reasoning": "", "excerpt": ""}}},
        1: {"text": "a", "error": "boom"},
    }
    inputs = {1: {"id": "7", "text": "a"}, 2: {"id": "8", "text": "b"}}
    render(results, tmp_path / "o.json", "json", tree, inputs)
    assert [r["row"] for r in json.loads((tmp_path / "o.json").read_text())] == [1, 2]
    render(results, tmp_path / "o.jsonl", "jsonl", tree, inputs)
    assert [json.loads(line)["text"] for line in (tmp_path / "o.jsonl").read_text().splitlines()] == ["a", "b"]
    render(results, tmp_path / "o.csv", "csv", tree, inputs)
    rows = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert list(rows[0])[:5] == ["row", "id", "text", "A>B", "A>C"], "input columns kept, then one per leaf"
    assert rows[0]["error"] == "boom" and rows[0]["A>B"] == "0"
    assert (rows[1]["A>B"], rows[1]["A>C"], rows[1]["classification_paths"]) == ("1", "0", "R>A | R>A>B")
    assert rows[1]["polarity: A>B"] == "Negative" and rows[1]["alerts"] == "high fraud: x"
    render(results, tmp_path / "o.xlsx", "xlsx", tree, inputs)
    sheet = load_workbook(tmp_path / "o.xlsx").active
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0] == list(rows[0]) and len(cells) == 3, "a header and one row per input row"
    assert cells[2][:5] == [2, "8", "b", 1, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.csv", "o.json", "o.jsonl", "o.xlsx"], "no temporary file left"


class _Interrupt(ScriptedProcessor):
    """Answers like the oracle until `calls_left` runs out, then acts as Ctrl-C."""

    calls_left: int = 10**9

    def _count(self):
        self.calls_left -= 1
        if self.calls_left < 0:
            raise KeyboardInterrupt

    async def process_with_schema(self, prompts, schema, *, max_tokens=256):
        self._count()
        return await super().process_with_schema(prompts, schema, max_tokens=max_tokens)

    async def process_choice(self, prompts, options):
        self._count()
        return await super().process_choice(prompts, options)


def _tree(folder: Path) -> Path:
    path = folder / "topics.json"
    path.write_text(json.dumps(TRAINING))
    return path


def _run(monkeypatch, processor, *args):
    class Pool:
        def __init__(self, settings):
            self.processor = processor

        async def start(self):
            pass

        async def close(self):
            pass

    monkeypatch.setattr("classifier.batch.run.ProcessorPool", Pool)
    return CliRunner(env={"COLUMNS": "250"}).invoke(batch_classify.main, list(args), catch_exceptions=False)


def test_interrupted_run_resumes_without_losing_or_repeating_a_row(tmp_path, monkeypatch):
    texts = [RUSHED, "Great content", "", "Great content", RUSHED, "Great content", "x"]
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", "text"], *[[i, t] for i, t in enumerate(texts)]])
    common = ["--config", str(_tree(tmp_path)), "--input-file", str(source), "--chunk-size", "2",
              "--enable-classification", "--enable-alerts"]
    answer = oracle(GOLD, capability_answers)

    whole = _run(monkeypatch, _Interrupt(answer), *common, "--save-path", str(tmp_path / "whole.jsonl"))
    assert whole.exit_code == 0, whole.output
    assert "skipped 1 empty rows: 3" in whole.output and "top topic paths" in whole.output

    out = tmp_path / "out.jsonl"
    stopped = _Interrupt(answer)
    stopped.calls_left = 9  # a few chunks in, mid-chunk
    first = _run(monkeypatch, stopped, *common, "--save-path", str(out))
    assert first.exit_code == 130 and "interrupted" in first.output
    journaled = len((tmp_path / "out.jsonl.journal.jsonl").read_text().splitlines()) - 1
    assert 0 < journaled < 6
    second = _run(monkeypatch, _Interrupt(answer), *common, "--save-path", str(out))
    assert second.exit_code == 0 and f"resuming from {tmp_path / 'out.jsonl.journal.jsonl'}" in second.output
    assert f"{journaled} rows done, {6 - journaled} to go" in second.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == [1, 2, 4, 5, 6, 7]
    assert rows == [json.loads(line) for line in (tmp_path / "whole.jsonl").read_text().splitlines()]


def test_a_rerun_with_other_capabilities_refuses_to_mix_results(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("text\nGreat content\n")
    common = ["--config", str(_tree(tmp_path)), "--input-file", str(source), "--save-path", str(tmp_path / "o.json")]
    proc = ScriptedProcessor(oracle({}, capability_answers))
    assert _run(monkeypatch, proc, *common).exit_code == 0
    again = _run(monkeypatch, proc, *common, "--enable-alerts")
    assert again.exit_code == 1 and "--no-resume to start over" in again.output
    assert _run(monkeypatch, proc, *common, "--enable-alerts", "--no-resume").exit_code == 0


def test_a_form_feed_or_line_separator_stays_inside_one_record_and_extra_fields_are_reported(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("text,n\nfirst\fpage\u2028next line,1\nplain,2\n", encoding="utf-8")
    rows = read_rows(path, "text")
    assert rows.texts == {1: "first\fpage\u2028next line", 2: "plain"} and rows.total == 2
    path.write_text("text,n\nok,1\ntoo,many,fields\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"data row 2: 3 fields but the header names 2; .* must be quoted"):
        read_rows(path, "text")


def test_a_rerun_after_the_taxonomy_file_changed_names_the_change(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("text\nGreat content\n")
    tree = _tree(tmp_path)
    common = ["--config", str(tree), "--input-file", str(source), "--save-path", str(tmp_path / "o.json")]
    proc = ScriptedProcessor(oracle({}, capability_answers))
    assert _run(monkeypatch, proc, *common).exit_code == 0
    tree.write_text(tree.read_text().replace("Content", "Contents"))
    again = _run(monkeypatch, proc, *common)
    assert again.exit_code == 1 and "taxonomy_sha256:" in again.output and "--no-resume" in again.output
    other = _run(monkeypatch, proc, *common, "--no-resume", "--max-paths", "1")
    assert other.exit_code == 0
    refused = _run(monkeypatch, proc, *common, "--max-paths", "2")
    assert refused.exit_code == 1 and "max_paths: 1 then, 2 now" in " ".join(refused.output.split())


def test_a_rerun_with_another_calibration_refuses_to_mix_results(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("text\nGreat content\n")
    common = ["--config", str(_tree(tmp_path)), "--input-file", str(source), "--save-path", str(tmp_path / "o.json")]
    calibration = save_calibration(Calibration({1: ProbabilityMap((0.0, 1.0), (0.0, 0.5))}, min_probability=0.3),
                                   tmp_path / "cal.json")
    proc = ScriptedProcessor(oracle({}, capability_answers))
    assert _run(monkeypatch, proc, *common, "--calibration", str(calibration)).exit_code == 0
    again = _run(monkeypatch, proc, *common)
    assert again.exit_code == 1 and "calibration:" in again.output and "--no-resume" in again.output
    (tmp_path / "bad.json").write_text('{"levels": {}}')
    bad = _run(monkeypatch, proc, *common, "--calibration", str(tmp_path / "bad.json"))
    assert bad.exit_code == 2 and "is not a calibration file" in bad.output and "Traceback" not in bad.output


def test_the_prototypes_batch_flags(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text(f"text\n{RUSHED}\nGreat content\n")
    common = ["--config", str(_tree(tmp_path)), "--input-file", str(source)]
    proc = ScriptedProcessor(oracle(GOLD, capability_answers))

    only = _run(monkeypatch, proc, *common, "--save-path", str(tmp_path / "only.jsonl"), "--recommendations-only",
                "--alerts-only", "-vv")
    assert only.exit_code == 0, only.output
    rows = [json.loads(line) for line in (tmp_path / "only.jsonl").read_text().splitlines()]
    assert all(set(r) == {"row", "text", "recommendations", "alerts"} for r in rows)
    assert not any("topics" in call.schema.get("properties", {}) for call in proc.calls), "no taxonomy walk"

    sentiment = _run(monkeypatch, proc, *common, "--save-path", str(tmp_path / "s.jsonl"), "--prompt-type",
                     "sentiment", "--project-name", "Acme")
    assert sentiment.exit_code == 0, sentiment.output
    first = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])
    assert first["classification_result"]["classification_paths"][0] == "Acme>Delivery"
    assert set(first["stem_polarity"]) == {"Delivery>Pace", "Logistics>Catering"}

    calls = len(proc.calls)
    keyword = _run(monkeypatch, proc, *common, "--save-path", str(tmp_path / "k.jsonl"), "--prompt-type", "keyword")
    assert keyword.exit_code == 0 and "Examples:" in proc.calls[calls].prompts[0].instructions

    clash = _run(monkeypatch, proc, *common, "--alerts-only", "--enable-classification")
    assert clash.exit_code == 2 and "run only that capability" in clash.output


def test_a_run_writes_the_spreadsheet_and_the_report_beside_it(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", "text", "score"], [1, RUSHED, 3], [2, "", 1], [3, "Great content", 5]])
    out = tmp_path / "out.xlsx"
    done = _run(monkeypatch, ScriptedProcessor(oracle(GOLD, capability_answers)), "--config", str(_tree(tmp_path)),
                "--input-file", str(source), "--save-path", str(out), "--enable-stem-polarity")
    assert done.exit_code == 0, done.output
    cells = [[c.value for c in row] for row in load_workbook(out).active.iter_rows()]
    assert cells[0][:4] == ["row", "id", "text", "score"] and [r[0] for r in cells[1:]] == [1, 3]
    report = tmp_path / "out.report.html"
    assert f"report: {report}" in " ".join(done.output.split()) and "Delivery&gt;Pace" in report.read_text()
