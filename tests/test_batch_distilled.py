"""batch_classify.py --route distilled, killed with SIGKILL in the middle of each phase and rerun:
nothing the LLM answered is asked of it again, and every row is in the output once.

Against a deterministic OpenAI-compatible stand-in (`FaultServer` with `schema_answer`: every
answer a function of its prompt), so the resumed run must equal the uninterrupted one. The
real engine's run of the same route is at the end of the module.
"""
from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifier.llm.embedded import resolve_llm
from classifier.settings import EngineSettings

from .engine_server import EngineServer
from .fault_server import FaultServer, schema_answer
from .models import TEST_LLM
from .server_process import ROOT
from .test_batch_cli import journaled

ROWS = 150
SAMPLE = 40


@pytest.fixture
def comments(shared_data: Path, tmp_path: Path) -> Path:
    """150 restaurant review sentences, as the user's CSV."""
    with (shared_data / "semeval16_restaurants_train.csv").open(newline="", encoding="utf-8") as handle:
        texts = [row["text"] for _, row in zip(range(ROWS), csv.DictReader(handle))]
    path = tmp_path / "comments.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text"], *[[text] for text in texts]])
    return path


def command(url: str, comments: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "batch_classify.py"), "--backend", "vllm-server", "--vllm-server-url", url,
            "--config", str(ROOT / "configs" / "restaurants.json"), "--input-file", str(comments),
            "--save-path", str(output), "--chunk-size", "10", "--min-probability", "0", "--route", "distilled",
            "--distill-sample", str(SAMPLE), "--distill-min-comments", "100", "--enable-stem-polarity", *extra]


def taught(stderr: str) -> int:
    """How many comments the run said the LLM answers to teach (the draw and the floor's)."""
    return sum(int(n) for n in re.findall(r"the LLM answers (\d+) (?:more )?comments", " ".join(stderr.split())))


def asked_about(bodies: list[dict]) -> set[str]:
    """The comments the LLM was asked about: each prompt's comment, after the labelled comments
    shown as examples and before the question (`Prompt.messages`)."""
    asked = set()
    for body in bodies:
        user = body["messages"][-1]["content"].split("The comment to analyse:\n")[-1]
        quoted = re.match(r'Comment: "(.*)"\n\n', user, re.DOTALL)
        asked.add(quoted.group(1) if quoted else user)
    return asked


@pytest.mark.parametrize("phase", ["teaching", "answering"])
def test_a_distilled_run_killed_mid_phase_resumes_without_asking_the_llm_twice(
        comments: Path, tmp_path: Path, phase: str) -> None:
    with FaultServer(models=["stand-in"], delay=0.05, answer=schema_answer) as server:
        whole = subprocess.run(command(server.url, comments, tmp_path / "whole.jsonl"), capture_output=True,
                               text=True, timeout=600, cwd=ROOT)
        assert whole.returncode == 0, whole.stderr[-3000:]
        sample = taught(whole.stderr)
        assert SAMPLE <= sample < ROWS and "answered without the LLM" in whole.stdout
        assert re.search(r"answered without the LLM\s*│\s*(\d+) of 150", whole.stdout)

        output, journal = tmp_path / "out.jsonl", tmp_path / "out.jsonl.journal.jsonl"
        low, high = (10, sample - 10) if phase == "teaching" else (sample + 1, ROWS - 1)
        run = subprocess.Popen(command(server.url, comments, output), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=ROOT)
        try:
            while len(journaled(journal)) < low and run.poll() is None:
                time.sleep(0.02)
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait()
        killed_at = journaled(journal)
        assert run.returncode == -signal.SIGKILL and low <= len(killed_at) <= high, len(killed_at)
        answered = {killed_at[row]["text"] for row in killed_at if "error" not in killed_at[row]}
        rerun_from = len(server.bodies)
        rerun = subprocess.run(command(server.url, comments, output), capture_output=True, text=True, timeout=600,
                               cwd=ROOT)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        asked = asked_about(server.bodies[rerun_from:])
    assert asked and not asked & answered, "the rerun asked the LLM again about comments it had answered"
    results = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["row"] for r in results] == list(range(1, ROWS + 1)), "every row exactly once, in order"
    expected = [json.loads(line) for line in (tmp_path / "whole.jsonl").read_text().splitlines()]
    assert results == expected, "the resumed run ends where the uninterrupted one did"


def test_a_file_below_the_distilling_size_is_answered_by_the_llm_and_says_so(comments: Path, tmp_path: Path) -> None:
    with FaultServer(models=["stand-in"], answer=schema_answer) as server:
        done = subprocess.run(command(server.url, comments, tmp_path / "out.jsonl", "--distill-min-comments", "500"),
                              capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    said = " ".join((done.stderr + done.stdout).split())
    assert "150 comments are too few to learn from (fewer than 500): the LLM answers every one" in said
    assert re.search(r"answered without the LLM\s*│\s*0 of 150", done.stdout)


@pytest.mark.engine
def test_the_distilled_route_on_the_real_engine(comments: Path, tmp_path: Path) -> None:
    """The small model teaches a sample; the learned models decide the topics of most of the rest."""
    with EngineServer(resolve_llm(TEST_LLM, EngineSettings().cache_dir)) as engine:
        done = subprocess.run(command(engine.url, comments, tmp_path / "out.jsonl"),
                              capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(results) == ROWS and not any("error" in r for r in results)
    topics_by = [r["classification_result"].get("source") for r in results]
    rest = ROWS - taught(done.stderr)
    assert topics_by.count(None) == ROWS - rest, "the sample's topics are the LLM's answers, no labels yet"
    assert topics_by.count("learned") >= rest / 2, topics_by
    assert re.search(r"answered without the LLM\s*│\s*\d+ of 150", done.stdout)
    # The small model accepts many topics per comment: the polarity model, sure only of a comment's
    # one feeling, leaves them to the LLM.
    assert {v["source"] for r in results for v in r["stem_polarity"].values()} <= {"learned", "llm"}
