"""batch_classify.py against a real vLLM server (the embedded default model on the CPU
engine, started once for the module): 60 restaurant reviews, a run killed with SIGKILL
after some chunks reached the journal, then rerun. The rerun must leave exactly 60
results, each row once, equal to an uninterrupted run's.
"""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifier.llm.default_model import ensure_default_model
from classifier.settings import EngineSettings

from .engine_server import EngineServer
from .server_process import ROOT

pytestmark = pytest.mark.engine

ROWS = 60
CHUNK = 10


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineServer]:
    with EngineServer(ensure_default_model(EngineSettings().cache_dir)) as server:
        print(f"vLLM server answered after {server.started_in:.1f} s")
        yield server


@pytest.fixture
def comments(shared_data: Path, tmp_path: Path) -> Path:
    """The first 60 reviews of the SemEval-2016 restaurants set, as the user's CSV."""
    source = shared_data / "semeval16_restaurants_train.csv"
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        rows = [next(reader)] + [row for _, row in zip(range(ROWS), reader)]
    path = tmp_path / "comments.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def command(engine: EngineServer, comments: Path, output: Path) -> list[str]:
    return [sys.executable, str(ROOT / "batch_classify.py"), "--backend", "vllm-server",
            "--vllm-server-url", engine.url, "--config", str(ROOT / "configs" / "restaurants.json"),
            "--input-file", str(comments), "--input-column", "text", "--save-path", str(output),
            "--chunk-size", str(CHUNK)]  # fmt: skip


def journaled(journal: Path) -> dict[int, dict]:
    """Row -> result as the journal holds them now (a line still being written is left out)."""
    if not journal.exists():
        return {}
    entries = [json.loads(line) for line in journal.read_text().splitlines(keepends=True)[1:] if line.endswith("\n")]
    return {entry["row"]: entry["result"] for entry in entries}


def test_killed_run_resumes_to_exactly_the_uninterrupted_result(engine: EngineServer, comments: Path, tmp_path: Path):
    began = time.monotonic()
    whole = tmp_path / "whole.jsonl"
    done = subprocess.run(command(engine, comments, whole), capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    uninterrupted = time.monotonic() - began
    assert "encoding utf-8" in done.stderr and f"{ROWS} texts in column 'text'" in done.stderr
    assert "top topic paths" in done.stdout

    output = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal.jsonl"
    run = subprocess.Popen(command(engine, comments, output), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=ROOT)
    try:
        while len(journaled(journal)) < 2 * CHUNK and run.poll() is None:
            time.sleep(0.2)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    killed_at = journaled(journal)
    assert run.returncode == -signal.SIGKILL and 2 * CHUNK <= len(killed_at) < ROWS, sorted(killed_at)
    kept = sum("error" not in result for result in killed_at.values())  # failed rows are retried
    assert not output.exists(), "the output is rendered only at the end"

    rerun = subprocess.run(command(engine, comments, output), capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{kept} rows done, {ROWS - kept} to go" in " ".join(rerun.stderr.split())

    results = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["row"] for r in results] == list(range(1, ROWS + 1)), "every row exactly once, in order"
    expected = [json.loads(line) for line in whole.read_text().splitlines()]
    assert [r["text"] for r in results] == [r["text"] for r in expected]
    assert results == expected, "resumed results equal the uninterrupted run's"
    print(f"uninterrupted run {uninterrupted:.1f} s; killed after {len(killed_at)} rows; "
          f"whole test {time.monotonic() - began:.1f} s")
