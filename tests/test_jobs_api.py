"""Classification jobs driven by the official `openai` client against the real server
process, with a deterministic stand-in LLM server: JSONL and CSV inputs end to end, bad
input, cancel, listing, keys, summary and report."""
from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from .fault_server import FaultServer, schema_answer
from .server_process import ServerProcess


@pytest.fixture(scope="module")
def llm() -> Iterator[FaultServer]:
    with FaultServer(models=["m"], answer=schema_answer) as server:
        yield server


@pytest.fixture(scope="module")
def server(llm: FaultServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("jobs")
    with ServerProcess(["--backend", "vllm-server", "--vllm-server-url", llm.url, "--data-dir", str(data),
                        "--job-chunk-size", "4", "--api-key", "alice", "--api-key", "bob",
                        "--max-queued-lines", "500"]) as process:
        yield process


def client(server: ServerProcess, key: str = "alice") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def jsonl(requests: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in requests).encode()


def request(custom_id: str, *texts: str, **body) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/classify", "body": {"texts": list(texts), **body}}


def wait_for(api: openai.OpenAI, batch_id: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = api.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.2)


def output_lines(api: openai.OpenAI, file_id: str) -> list[dict]:
    return [json.loads(line) for line in api.files.content(file_id).text.splitlines()]


def test_a_jsonl_job_runs_to_completed_with_every_custom_id_once(server: ServerProcess) -> None:
    api = client(server)
    requests = [request(f"r{k}", f"comment {k}", "another") for k in range(10)]
    requests[3]["body"]["capabilities"] = ["classification", "stem_polarity"]
    uploaded = api.files.create(file=("in.jsonl", jsonl(requests)), purpose="batch")
    assert uploaded.object == "file" and uploaded.bytes > 0 and uploaded.purpose == "batch"
    batch = api.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="24h",
                               metadata={"project": "demo"})
    assert batch.status in ("in_progress", "completed") and batch.request_counts.total == 10
    done = wait_for(api, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 10 and done.request_counts.failed == 0
    assert done.error_file_id is None and done.metadata == {"project": "demo"}
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    lines = output_lines(api, done.output_file_id)
    assert [line["custom_id"] for line in lines] == [f"r{k}" for k in range(10)], "every line once, in order"
    for line in lines:
        assert line["error"] is None and line["response"]["status_code"] == 200 and line["response"]["request_id"]
        body = line["response"]["body"]
        assert body["batch_info"]["text_count"] == 2 and [r["text"] for r in body["results"]][1] == "another"
    assert "stem_polarity" in lines[3]["response"]["body"]["results"][0]
    listed = api.batches.list(limit=100)
    assert batch.id in [b.id for b in listed.data]

    summary = httpx.get(f"{server.url}/v1/batches/{batch.id}/summary", headers={"Authorization": "Bearer alice"}).json()
    assert summary["texts"] == 20 and summary["request_counts"]["completed"] == 10 and summary["paths"], lines[0]["response"]["body"]["results"]
    report = httpx.get(f"{server.url}/v1/batches/{batch.id}/report", headers={"Authorization": "Bearer alice"})
    assert report.status_code == 200 and "Classification report" in report.text

    other = client(server, "bob")
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    assert batch.id not in [b.id for b in other.batches.list().data], "a key sees only its own batches"


def test_a_csv_job_takes_its_columns_from_the_metadata(server: ServerProcess) -> None:
    api = client(server)
    table = io.StringIO()
    csv.writer(table).writerows([["ref", "comment", "score"], ["a-1", "The trainer rushed", "2"], ["a-2", "", "5"],
                                 ["a-3", "Great lunch", "4"]])
    uploaded = api.files.create(file=("survey.csv", table.getvalue().encode()), purpose="batch")
    batch = api.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="24h",
                               metadata={"text_column": "comment", "id_column": "ref",
                                         "capabilities": "classification,alerts"})
    done = wait_for(api, batch.id)
    assert done.status == "completed" and done.request_counts.total == 3
    lines = output_lines(api, done.output_file_id)
    assert [line["custom_id"] for line in lines] == ["a-1", "a-2", "a-3"]
    first, empty = lines[0]["response"]["body"], lines[1]["response"]["body"]
    assert first["batch_info"]["capabilities_executed"] == ["classification", "alerts"]
    assert "error" not in first["results"][0] and "alerts" in first["results"][0], first["results"][0]
    assert empty["results"][0]["skipped"] == "empty text"


@pytest.mark.parametrize(("name", "content", "metadata", "says"), [
    ("junk.bin", b"\x00\x01\x02\x03", {}, "neither JSONL"),
    ("in.jsonl", b'{"custom_id": "a", "method": "POST", "url": "/v1/chat", "body": {"texts": ["x"]}}\n',
     {}, "line 1: url is '/v1/chat'"),
    ("in.jsonl", jsonl([request("a", "x", capabilities=["magic"])]), {}, "line 1: body: unknown capability 'magic'"),
    ("in.jsonl", jsonl([request("a", "x", taxonomy="nope")]), {}, "line 1: body: unknown taxonomy 'nope'"),
    ("in.jsonl", b"{not json}\n", {}, "line 1 is not JSON"),
    ("in.jsonl", jsonl([request("a", "x"), request("a", "y")]), {}, "line 2: custom_id 'a' is used twice"),
    ("in.csv", b"text,n\nhello,1\n", {"text_column": "comment"}, "column 'comment' is not in the file"),
])  # fmt: skip
def test_bad_input_fails_the_batch_naming_the_line(server: ServerProcess, name: str, content: bytes,
                                                   metadata: dict, says: str) -> None:
    api = client(server)
    uploaded = api.files.create(file=(name, content), purpose="batch")
    batch = api.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="24h",
                               metadata=metadata)
    assert batch.status == "failed" and batch.failed_at
    messages = " | ".join(error.message for error in batch.errors.data)
    assert says in messages, messages
    assert httpx.get(f"{server.url}/health").status_code == 200, "the server stays up"


def test_bad_input_that_used_to_answer_500_is_a_4xx_that_says_what_to_fix(server: ServerProcess) -> None:
    headers = {"Authorization": "Bearer alice"}
    uploaded = client(server).files.create(file=("in.jsonl", jsonl([request("a", "x")])), purpose="batch")
    window = httpx.post(f"{server.url}/v1/batches", headers=headers, json={
        "input_file_id": uploaded.id, "endpoint": "/v1/classify", "completion_window": 24})
    assert window.status_code == 422 and "completion_window 24" in window.text
    nul = httpx.post(f"{server.url}/classify", headers=headers, json={"texts": ["x"], "config_path": "a\x00b"})
    assert 400 <= nul.status_code < 500 and "NUL" in nul.text
    query = httpx.get(f"{server.url}/v1/batches", headers=headers, params={"limit": "many"})
    assert query.status_code == 422 and "limit" in query.text and "Content-Type" not in query.text
    form = httpx.post(f"{server.url}/v1/files", headers=headers, data={"purpose": "batch"})
    assert form.status_code == 422 and "file" in form.text and "Content-Type" not in form.text, "not a 415"


def test_requests_the_api_refuses_at_once(server: ServerProcess) -> None:
    api = client(server)
    uploaded = api.files.create(file=("in.jsonl", jsonl([request("a", "x")])), purpose="batch")
    with pytest.raises(openai.UnprocessableEntityError, match="this service runs"):
        api.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError, match="no file"):
        api.batches.create(input_file_id="file-nope", endpoint="/v1/classify", completion_window="24h")
    with pytest.raises(openai.UnprocessableEntityError, match="not allowed"):
        api.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="24h",
                           metadata={"webhook_url": "http://169.254.169.254/latest"})
    with pytest.raises(openai.AuthenticationError):
        client(server, "mallory").files.list()
    too_many = api.files.create(file=("big.jsonl", jsonl([request(f"b{k}", "x") for k in range(501)])), purpose="batch")
    with pytest.raises(openai.RateLimitError, match="the limit is 500"):
        api.batches.create(input_file_id=too_many.id, endpoint="/v1/classify", completion_window="24h")
    deleted = api.files.delete(uploaded.id)
    assert deleted.deleted and uploaded.id not in [f.id for f in api.files.list().data]
