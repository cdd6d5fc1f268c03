"""A job on the distilled route (`metadata.route: "distilled"`): the LLM teaches on a sample of
the job's comments, models learned from its answers answer the rest, the batch object shows
the phase and who answered how many, and a server SIGKILLed in the middle of a phase resumes
without asking the LLM again about what it answered. Against the deterministic stand-in LLM
(`FaultServer` with `schema_answer`), so a resumed job must end where an uninterrupted one did."""
from __future__ import annotations

import csv
import io
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from classifier.api.jobs_distill import check_distilled, distill_settings
from classifier.jobs.held import Line
from classifier.settings import DistillSettings

from .fault_server import FaultServer, schema_answer
from .jobs_support import answers, api, finished, wait
from .server_process import ROOT, ServerProcess
from .test_batch_distilled import asked_about

ROWS = 150
METADATA = {"route": "distilled", "distill_sample": "40", "distill_min_comments": "100",
            "capabilities": "classification"}


@pytest.fixture(scope="module")
def llm() -> Iterator[FaultServer]:
    with FaultServer(models=["stand-in"], answer=schema_answer, delay=0.03) as server:
        yield server


@pytest.fixture(scope="module")
def comments(shared_data: Path) -> bytes:
    """150 restaurant review sentences as the CSV a user uploads."""
    with (shared_data / "semeval16_restaurants_train.csv").open(newline="", encoding="utf-8") as handle:
        texts = [row["text"] for _, row in zip(range(ROWS), csv.DictReader(handle))]
    out = io.StringIO()
    csv.writer(out).writerows([["text"], *[[text] for text in texts]])
    return out.getvalue().encode()


def server_args(llm: FaultServer, data: Path) -> list[str]:
    return ["--backend", "vllm-server", "--vllm-server-url", llm.url, "--config", str(ROOT / "configs" / "restaurants.json"),
            "--min-probability", "0", "--job-chunk-size", "10", "--job-lease", "2", "--data-dir", str(data)]


def submit(server: ServerProcess, comments: bytes, metadata: dict[str, str] = METADATA) -> str:
    client = api(server)
    uploaded = client.files.create(file=("comments.csv", comments), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="24h",
                                 metadata=metadata).id


def record(server: ServerProcess, batch_id: str) -> dict[str, Any]:
    """The batch object as the service sends it, `distilled` included."""
    return httpx.get(f"{server.url}/v1/batches/{batch_id}", timeout=10).json()


def kept_lines(data: Path, batch_id: str) -> set[int]:
    """The lines a (dead) server had stored as answered, read from its SQLite file."""
    with sqlite3.connect(data / "jobs.db") as db:
        rows = db.execute("SELECT line_no FROM job_lines WHERE batch_id = ? AND output IS NOT NULL", (batch_id,))
        return {line_no for (line_no,) in rows}


def test_metadata_settings_are_read_and_refused_with_the_key_named() -> None:
    base = DistillSettings()
    assert distill_settings({"distill_sample": "0.1", "distill_labels": "sure"}, base) == DistillSettings(
        sample=0.1, labels="sure")
    for metadata, said in (({"distill_sample": "many"}, "metadata.distill_sample 'many' is not a number"),
                           ({"distill_floor": "-1"}, "metadata.distill_floor '-1': give a number >= 0"),
                           ({"distill_labels": "some"}, "metadata.distill_labels 'some': give all or sure")):
        with pytest.raises(ValueError, match=said):
            distill_settings(metadata, base)


def test_lines_a_distilled_job_cannot_take_are_named() -> None:
    one = Line(1, "a", {"texts": ["The soup was cold."]})
    assert check_distilled([one, Line(2, "b", {"texts": ["Rude waiter."]})]) is None
    assert "line 2: a distilled job takes one comment per line, this one holds 2" in check_distilled(
        [one, Line(2, "b", {"texts": ["x", "y"]})])
    assert "line 3: a distilled job's lines must all name the same taxonomy" in check_distilled(
        [one, Line(2, "b", {"texts": ["x"]}), Line(3, "c", {"texts": ["y"], "capabilities": ["alerts"]})])


def test_a_distilled_job_answers_most_comments_without_the_llm(llm: FaultServer, comments: bytes,
                                                              tmp_path: Path) -> None:
    with ServerProcess(server_args(llm, tmp_path)) as server:
        with pytest.raises(openai.UnprocessableEntityError, match="jobs know"):
            submit(server, comments, {**METADATA, "route": "fastest"})
        asked_before = len(llm.bodies)
        batch_id = submit(server, comments)
        batch = wait(server, batch_id, finished, timeout=300)
        assert batch.status == "completed" and batch.request_counts.completed == ROWS
        shown = record(server, batch_id)
        got = answers(server, batch.output_file_id)
    progress = shown["distilled"]
    assert shown["metadata"] == METADATA, "the batch's metadata is the owner's, the progress apart"
    assert list(got) == [str(row) for row in range(1, ROWS + 1)], "every comment once, in input order"
    assert progress["phase"] == "done" and progress["comments"] == ROWS
    assert sum(progress["answered_by"].values()) == ROWS and progress["answered_by"]["learned"] >= ROWS // 3
    assert 40 <= progress["sampled"] < ROWS and progress["models"] == {"topics": "learned", "polarity": ""}
    sources = [body["results"][0]["classification_result"].get("source") for body in got.values()]
    assert sources.count("learned") >= ROWS // 3, "the learned models decided the topics past the sample"
    asked = asked_about(llm.bodies[asked_before:])
    assert len(asked) <= progress["sampled"] + progress["escalated"], "the LLM was asked only about its share"


@pytest.mark.parametrize("phase", ["teaching", "answering"])
def test_a_distilled_job_killed_mid_phase_resumes_without_asking_the_llm_twice(
        llm: FaultServer, comments: bytes, tmp_path: Path, phase: str) -> None:
    with ServerProcess(server_args(llm, tmp_path / "whole")) as server:
        whole = answers(server, wait(server, submit(server, comments), finished, timeout=300).output_file_id)
    server = ServerProcess(server_args(llm, tmp_path / "killed")).start()
    try:
        batch_id = submit(server, comments)
        low = 10 if phase == "teaching" else 0
        wait(server, batch_id, lambda b: (record(server, batch_id).get("distilled", {}).get("phase") == phase
                                          and b.request_counts.completed > low), timeout=300)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        kept = kept_lines(tmp_path / "killed", batch_id)
        asked_from = len(llm.bodies)
        server = ServerProcess(server_args(llm, tmp_path / "killed")).start()
        batch = wait(server, batch_id, finished, timeout=300)
        got = answers(server, batch.output_file_id)
    finally:
        server.stop()
    assert batch.status == "completed" and batch.request_counts.completed == ROWS
    assert kept, "the killed server had kept some lines"
    texts = [row["text"] for row in csv.DictReader(io.StringIO(comments.decode()))]
    assert not asked_about(llm.bodies[asked_from:]) & {texts[line - 1] for line in kept}, "asked again about kept lines"
    assert got == whole, "the resumed job ends where the uninterrupted one did"


def test_a_distilled_job_cancelled_mid_phase_stops_keeping_the_lines_done(llm: FaultServer, comments: bytes,
                                                                         tmp_path: Path) -> None:
    with ServerProcess(server_args(llm, tmp_path)) as server:
        batch_id = submit(server, comments)
        wait(server, batch_id, lambda b: b.request_counts.completed >= 10, timeout=300)
        api(server).batches.cancel(batch_id)
        batch = wait(server, batch_id, finished, timeout=60)
        got = answers(server, batch.output_file_id) if batch.output_file_id else {}
    assert batch.status == "cancelled" and 10 <= batch.request_counts.completed < ROWS
    assert len(got) == batch.request_counts.completed, "the lines answered before the cancel are in the output"
