"""`python -m classifier.replay`: a batch run's journal records what produced its answers (weights'
digest, engine version, sampling, command line), and a sample of them runs again to count matches.
The engine test runs the real CPU engine with the small model, as a user would."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.replay import decisions, replay_arguments

from .models import TEST_LLM
from .server_process import ROOT

ROWS = 50


def test_the_recorded_command_runs_on_the_replays_own_files() -> None:
    recorded = ["--config", "configs/restaurants.json", "--input-file", "in.csv", "--save-path=out.jsonl",
                "--input-column", "comment", "--report", "r.html", "--resume", "--enable-stem-polarity"]
    assert replay_arguments(recorded, Path("/t/s.csv"), Path("/t/o.jsonl")) == [
        "--config", "configs/restaurants.json", "--enable-stem-polarity", "--input-file", "/t/s.csv",
        "--input-column", "text", "--save-path", "/t/o.jsonl", "--no-resume"]


def test_decisions_leave_out_probabilities_and_words() -> None:
    said = {"text": "x", "classification_result": {"classification_paths": ["R>Food", "R>Food>Quality"],
                                                   "node_probabilities": {"R>Food": 0.91}},
            "stem_polarity": {"Food>Quality": {"polarity": "Negative", "probability": 0.8, "reasoning": "cold"}},
            "alerts": {"has_alerts": False, "probability": 0.02}}
    moved = json.loads(json.dumps(said))
    moved["classification_result"]["node_probabilities"]["R>Food"] = 0.88
    moved["stem_polarity"]["Food>Quality"]["reasoning"] = "it was cold"
    assert decisions(moved) == decisions(said)
    moved["alerts"]["has_alerts"] = True
    assert decisions(moved) != decisions(said)


@pytest.mark.parametrize("header, said", [
    ({"journal": 1}, "records no command line"),
    ({"journal": 1, "distilled": {}, "run": {"arguments": []}}, "a distilled run's learned answers depend"),
])
def test_a_journal_that_cannot_be_replayed_says_why(tmp_path: Path, header: dict, said: str) -> None:
    output = tmp_path / "out.jsonl"
    output.write_text("")
    (tmp_path / "out.jsonl.journal.jsonl").write_text(json.dumps(header) + "\n")
    done = subprocess.run([sys.executable, "-m", "classifier.replay", str(output)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode != 0 and said in done.stderr and "Traceback" not in done.stderr


@pytest.mark.engine
def test_fifty_answers_of_the_cpu_engine_replayed(shared_data: Path, tmp_path: Path) -> None:
    with (shared_data / "semeval16_restaurants_train.csv").open(newline="", encoding="utf-8") as handle:
        texts = [row["text"] for _, row in zip(range(ROWS), csv.DictReader(handle))]
    source, output = tmp_path / "comments.csv", tmp_path / "out.jsonl"
    with source.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text"], *[[text] for text in texts]])
    run = subprocess.run([sys.executable, str(ROOT / "batch_classify.py"), "--llm", TEST_LLM, "--config",
                          str(ROOT / "configs" / "restaurants.json"), "--input-file", str(source),
                          "--save-path", str(output), "--enable-stem-polarity"],
                         capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    header = json.loads((tmp_path / "out.jsonl.journal.jsonl").read_text().splitlines()[0])
    assert re.fullmatch(r"[0-9a-f]{64}", header["weights_sha256"]) and header["engine"]["vllm"]
    assert header["sampling"] == {"temperature": 0.0, "seed": 42} and header["run"]["arguments"][:2] == ["--llm", TEST_LLM]

    replay = subprocess.run([sys.executable, "-m", "classifier.replay", str(output), "--sample", str(ROWS)],
                            capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert "differs from the record" not in replay.stdout, replay.stdout
    counted = re.search(r"(\d+) of 50 identical \(\d+%\), (\d+) with the same decisions", replay.stdout)
    assert counted, replay.stdout
    identical, same = int(counted.group(1)), int(counted.group(2))
    assert identical <= same <= ROWS and same >= ROWS * 0.8, replay.stdout
    print(replay.stdout)  # the agreement, for docs/benchmarks.md
