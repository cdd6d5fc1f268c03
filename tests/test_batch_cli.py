"""batch_classify.py killed with SIGKILL after some chunks of 60 restaurant reviews reached
the journal, then rerun: the rerun must leave exactly 60 results, each row once.

Against a real vLLM server (the embedded default model on the CPU engine) the rerun keeps
every finished row verbatim and classifies only the rest. It cannot be compared with an
uninterrupted run result for result: the engine is not batch-invariant, so a comment
batched with other neighbours may get another answer. Equality with the uninterrupted run
is proven against a deterministic OpenAI-compatible stand-in (`FaultServer`), where every
answer is a function of its prompt alone.
"""
from __future__ import annotations

import csv
import json
import zlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from classifier.llm.embedded import resolve_llm
from classifier.settings import EngineSettings
from classifier.taxonomy import format_path, load_taxonomy

from .engine_server import EngineServer
from .fault_server import FaultServer
from .server_process import ROOT
from .models import TEST_LLM

ROWS = 60
CHUNK = 10


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineServer]:
    """The real vLLM server, started once for the module."""
    with EngineServer(resolve_llm(TEST_LLM, EngineSettings().cache_dir)) as server:
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


def command(url: str, comments: Path, output: Path) -> list[str]:
    return [sys.executable, str(ROOT / "batch_classify.py"), "--backend", "vllm-server",
            "--vllm-server-url", url, "--config", str(ROOT / "configs" / "restaurants.json"),
            "--input-file", str(comments), "--input-column", "text", "--save-path", str(output),
            "--chunk-size", str(CHUNK), "--min-probability", "0"]  # fmt: skip  # the small model is rarely sure


def journaled(journal: Path) -> dict[int, dict]:
    """Row -> result as the journal holds them now (a line still being written is left out)."""
    if not journal.exists():
        return {}
    entries = [json.loads(line) for line in journal.read_text().splitlines(keepends=True)[1:] if line.endswith("\n")]
    return {entry["row"]: entry["result"] for entry in entries}


def stand_in_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A `select` answer drawn from the offered topics by a hash of the whole prompt: the
    same prompt always gets the same answer, whatever it is batched with."""
    schema = body["response_format"]["json_schema"]["schema"]
    assert "topics" in schema["properties"], f"only classification is run here, not {sorted(schema['properties'])}"
    offered = schema["properties"]["topics"]["items"]["enum"]
    digest = zlib.crc32(json.dumps(body["messages"]).encode())
    return {"topics": sorted({offered[digest % len(offered)], offered[(digest >> 8) % len(offered)]})}


def run_then_kill_and_resume(
    url: str, comments: Path, tmp_path: Path, before_rerun: Callable[[], None] = lambda: None
) -> tuple[list[dict], list[dict], dict[int, dict]]:
    """An uninterrupted run, then a run SIGKILLed after two chunks reached its journal and
    its rerun. Returns the uninterrupted results, the resumed results and what the journal
    held at the kill; asserts what holds on any backend."""
    began = time.monotonic()
    whole = tmp_path / "whole.jsonl"
    done = subprocess.run(command(url, comments, whole), capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    uninterrupted = time.monotonic() - began
    assert "encoding utf-8" in done.stderr and f"{ROWS} texts in column 'text'" in done.stderr
    assert "top topic paths" in done.stdout

    output = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal.jsonl"
    run = subprocess.Popen(command(url, comments, output), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=ROOT)  # fmt: skip
    try:
        while len(journaled(journal)) < 2 * CHUNK and run.poll() is None:
            time.sleep(0.05)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    killed_at = journaled(journal)
    assert run.returncode == -signal.SIGKILL and 2 * CHUNK <= len(killed_at) < ROWS, sorted(killed_at)
    kept = sum("error" not in result for result in killed_at.values())  # failed rows are retried
    assert not output.exists(), "the output is rendered only at the end"

    before_rerun()
    rerun = subprocess.run(command(url, comments, output), capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{kept} rows done, {ROWS - kept} to go" in " ".join(rerun.stderr.split())

    results = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["row"] for r in results] == list(range(1, ROWS + 1)), "every row exactly once, in order"
    expected = [json.loads(line) for line in whole.read_text().splitlines()]
    assert [r["text"] for r in results] == [r["text"] for r in expected]
    for row, result in killed_at.items():
        if "error" not in result:
            assert results[row - 1]["classification_result"] == result["classification_result"], f"row {row} redone"
    print(f"uninterrupted run {uninterrupted:.1f} s; killed after {len(killed_at)} rows; "
          f"whole test {time.monotonic() - began:.1f} s")
    return expected, results, killed_at


def test_killed_run_resumes_to_exactly_the_uninterrupted_result(comments: Path, tmp_path: Path) -> None:
    with FaultServer(models=["stand-in"], delay=0.2, answer=stand_in_answer) as server:
        rerun_from: list[int] = []
        expected, results, killed_at = run_then_kill_and_resume(
            server.url, comments, tmp_path, before_rerun=lambda: rerun_from.append(len(server.bodies))
        )
        asked = {body["messages"][-1]["content"] for body in server.bodies[rerun_from[0] :]}
    assert all("classification_paths" in r["classification_result"] for r in results)
    assert results == expected, "resumed results equal the uninterrupted run's"
    redo = {r["text"] for r in results if "error" in killed_at.get(r["row"], {"error": "not done"})}
    assert asked == redo, "the rerun classifies only the rows not done"


@pytest.mark.engine
def test_killed_run_on_the_real_engine_keeps_finished_rows_and_classifies_the_rest(
    engine: EngineServer, comments: Path, tmp_path: Path
) -> None:
    _, results, killed_at = run_then_kill_and_resume(engine.url, comments, tmp_path)
    taxonomy = load_taxonomy(ROOT / "configs" / "restaurants.json")
    taxonomy_paths = {format_path(taxonomy.root.name, path) for path, _ in taxonomy.nodes()}
    for result in results:
        if result["row"] in killed_at and "error" in killed_at[result["row"]]:
            continue
        paths = result.get("classification_result", {}).get("classification_paths")
        assert paths is not None or result.get("error"), result
        assert set(paths or ()) <= taxonomy_paths, result
    assert any(r.get("classification_result", {}).get("classification_paths") for r in results), "topics were found"
