"""`python -m classifier.gold` on bad files: one line that says what to fix, never a traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from classifier.gold.__main__ import main

from .conftest import ROOT

CONFIG = str(ROOT / "configs" / "restaurants.json")


def run(tmp_path: Path, *args: str):
    result = CliRunner().invoke(main, [*args, "--config", CONFIG, "--data-dir", str(tmp_path / "data")])
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, TypeError, ValueError))
    return result


@pytest.mark.parametrize(("name", "content", "kind", "says"), [
    ("latin.csv", "text,paths\nCaf\u00e9 was cold,Food>Quality\n".encode("latin-1"), "paths", "not UTF-8 text"),
    ("broken.json", b'[{"id": 1, "annotations": [', "label-studio", "not valid JSON"),
    ("strings.json", json.dumps(["a task?"]).encode(), "label-studio", "task 1 of the export is not an object"),
    ("latin.json", "[\"caf\u00e9\"]".encode("latin-1"), "label-studio", "not UTF-8 text"),
])
def test_a_bad_import_file_gets_one_line_naming_the_problem(tmp_path, name, content, kind, says):
    bad = tmp_path / name
    bad.write_bytes(content)
    result = run(tmp_path, "import", str(bad), "--kind", kind)
    assert result.exit_code == 1 and says in result.output and len(result.output.strip().splitlines()) == 1


def test_a_csv_excel_wrote_with_a_byte_order_mark_imports(tmp_path):
    excel = tmp_path / "excel.csv"
    excel.write_bytes("text,paths\nRude waiter,Service>General\n".encode("utf-8-sig"))
    result = run(tmp_path, "import", str(excel))
    assert result.exit_code == 0 and "1 labels added" in result.output


def test_flag_labels_import_and_train_without_a_taxonomy(tmp_path):
    flags = tmp_path / "flags.csv"
    rows = [f"Please add feature number {n},,1" for n in range(6)] + [f"The build {n} passed,,0" for n in range(6)]
    flags.write_text("text,alerts,recommendations\n" + "\n".join(rows) + "\n", encoding="utf-8")
    runner, data = CliRunner(), ["--data-dir", str(tmp_path / "data")]
    imported = runner.invoke(main, ["import", str(flags), "--kind", "flags", *data])
    assert imported.exit_code == 0 and "recommendations: 12 flag labels (6 holding one, 6 not)" in imported.output
    trained = runner.invoke(main, ["train", *data])
    assert trained.exit_code == 0 and "recommendations: trained on 12 flag labels" in trained.output
    assert "too few to tune on" in trained.output  # the encoder tunes only on 100 labelled comments or more
    assert list((tmp_path / "data" / "learned" / "flags").glob("cli-recommendations.safetensors"))
    topics = runner.invoke(main, ["import", str(flags), *data])  # a topic kind needs the taxonomy
    assert topics.exit_code == 2 and "--config" in topics.output
