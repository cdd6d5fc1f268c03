"""Jobs that lose nothing: the server SIGKILLed twice mid-job and restarted (SQLite and
PostgreSQL), two server processes sharing one PostgreSQL queue, cancel at a chunk
boundary, and expiry keeping the lines done. The LLM is a deterministic stand-in, so a
resumed job's output must equal an uninterrupted run's."""
from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from .fault_server import FaultServer, schema_answer
from .jobs_support import answers, api, finished, postgres_database, requests_file, submit, wait
from .server_process import ServerProcess

LINES = 300


@pytest.fixture(scope="module")
def llm() -> Iterator[FaultServer]:
    with FaultServer(models=["m"], answer=schema_answer, delay=0.03) as server:
        yield server


def server_args(llm: FaultServer, store: list[str]) -> list[str]:
    return ["--backend", "vllm-server", "--vllm-server-url", llm.url, "--job-chunk-size", "10", "--job-lease", "2",
            *store]


def uninterrupted(llm: FaultServer, tmp_path: Path, lines: int = LINES) -> dict[str, dict]:
    with ServerProcess(server_args(llm, ["--data-dir", str(tmp_path / "whole")])) as server:
        batch = wait(server, submit(server, lines), finished)
        assert batch.status == "completed"
        return answers(server, batch.output_file_id)


def killed_twice(llm: FaultServer, store: list[str]) -> tuple[dict[str, dict], object]:
    server = ServerProcess(server_args(llm, store)).start()
    batch_id = submit(server, LINES)
    for at in (60, 180):  # SIGKILL at two different points, each time after some chunks were committed
        wait(server, batch_id, lambda b, at=at: b.request_counts.completed >= at)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        server = ServerProcess(server_args(llm, store)).start()
    try:
        batch = wait(server, batch_id, finished)
        return answers(server, batch.output_file_id), batch
    finally:
        server.stop()


def test_a_job_killed_twice_on_sqlite_resumes_to_the_uninterrupted_output(llm: FaultServer, tmp_path: Path) -> None:
    expected = uninterrupted(llm, tmp_path)
    got, batch = killed_twice(llm, ["--data-dir", str(tmp_path / "killed")])
    assert batch.status == "completed" and batch.request_counts.completed == LINES
    assert list(got) == [f"c{k}" for k in range(LINES)], "every line once, in input order"
    assert got == expected


def test_a_job_killed_twice_on_postgresql_resumes_to_the_uninterrupted_output(llm: FaultServer, tmp_path: Path) -> None:
    expected = uninterrupted(llm, tmp_path)
    with postgres_database() as url:
        got, batch = killed_twice(llm, ["--data-dir", str(tmp_path / "files"), "--database-url", url])
    assert batch.status == "completed" and list(got) == [f"c{k}" for k in range(LINES)]
    assert got == expected


def test_two_workers_share_one_postgresql_queue(llm: FaultServer, tmp_path: Path) -> None:
    expected = uninterrupted(llm, tmp_path, 500)
    with postgres_database() as url:
        store = ["--data-dir", str(tmp_path / "shared"), "--database-url", url]
        with ServerProcess(server_args(llm, store)) as first, ServerProcess([*server_args(llm, store), "--jobs-only"],
                                                                             ready=None) as second:
            batch = wait(first, submit(first, 500), finished)
            got = answers(first, batch.output_file_id)
            assert second.process.poll() is None, "the jobs-only worker is still running"
        with psycopg.connect(url) as db:
            workers = db.execute("SELECT done_by, count(*) FROM job_chunks GROUP BY done_by").fetchall()
    assert batch.status == "completed" and got == expected, "every line once"
    assert len(workers) == 2 and all(count > 0 for _, count in workers), f"both workers did chunks: {workers}"


def test_cancel_stops_at_a_chunk_boundary_keeping_the_lines_done(llm: FaultServer, tmp_path: Path) -> None:
    with ServerProcess(server_args(llm, ["--data-dir", str(tmp_path)])) as server:
        batch_id = submit(server, LINES)
        wait(server, batch_id, lambda b: b.request_counts.completed >= 20)
        cancelling = api(server).batches.cancel(batch_id)
        assert cancelling.status in ("cancelling", "cancelled")
        batch = wait(server, batch_id, finished)
        got = answers(server, batch.output_file_id)
    assert batch.status == "cancelled" and batch.cancelled_at
    done = batch.request_counts.completed
    assert 20 <= done < LINES and done % 10 == 0, "whole chunks only"
    assert list(got) == [f"c{k}" for k in range(done)]


def test_an_expired_job_keeps_the_lines_done(llm: FaultServer, tmp_path: Path) -> None:
    with ServerProcess(server_args(llm, ["--data-dir", str(tmp_path)])) as server:
        client = api(server)
        uploaded = client.files.create(file=("in.jsonl", requests_file(2000)), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="3s")
        batch = wait(server, batch.id, finished)
        got = answers(server, batch.output_file_id) if batch.output_file_id else {}
    assert batch.status == "expired" and batch.expired_at
    assert 0 < batch.request_counts.completed < 2000 and len(got) == batch.request_counts.completed
