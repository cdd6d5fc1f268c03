"""Webhooks when a batch ends: signed per Standard Webhooks (checked here independently of
the server's code), retried with backoff until the receiver takes it, every attempt
visible on the batch, and only to hosts on --webhook-allow."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from classifier.jobs.webhooks import WebhookRefused, check_url, secret_bytes

from .fault_server import FaultServer, schema_answer
from .jobs_support import api, finished, requests_file, wait
from .server_process import ServerProcess

SECRET = secrets.token_bytes(24)


class Receiver:
    """A loopback HTTP endpoint that answers the statuses it is given, in order (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.received = list(statuses), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verified(headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks: v1,base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET, signed, hashlib.sha256).digest()).decode()
    return any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split())


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with FaultServer(models=["m"], answer=schema_answer) as llm, ServerProcess([
        "--backend", "vllm-server", "--vllm-server-url", llm.url, "--webhook-allow", "127.0.0.1",
        "--webhook-secret", "whsec_" + base64.b64encode(SECRET).decode(), "--webhook-backoff", "0.1",
        "--webhook-attempts", "4",
    ]) as process:  # fmt: skip
        yield process


def test_a_receiver_that_fails_twice_gets_three_signed_attempts(server: ServerProcess) -> None:
    receiver = Receiver([500, 503])
    try:
        client = api(server)
        uploaded = client.files.create(file=("in.jsonl", requests_file(5)), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="24h",
                                      metadata={"webhook_url": receiver.url})
        wait(server, batch.id, finished)
        done = wait(server, batch.id, lambda b: len(b.model_extra["webhook_attempts"]) >= 3)
    finally:
        time.sleep(0.3)  # no fourth attempt comes
        receiver.close()
    assert len(receiver.received) == 3
    assert all(verified(headers, body) for headers, body in receiver.received), "every attempt is signed"
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 1, "one message, retried"
    event = json.loads(receiver.received[-1][1])
    assert event["type"] == "batch.completed" and event["data"]["id"] == batch.id
    assert event["data"]["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    attempts = done.model_extra["webhook_attempts"]
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(1, 500), (2, 503), (3, 200)]


def test_a_webhook_off_the_allow_list_is_refused_at_creation(server: ServerProcess) -> None:
    client = api(server)
    uploaded = client.files.create(file=("in.jsonl", requests_file(1)), purpose="batch")
    for url in ("http://10.0.0.8/hook", "http://localhost:9/hook", "file:///etc/passwd"):
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            client.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="24h",
                                  metadata={"webhook_url": url})
        assert "webhook_url" in str(refused.value)
    assert not [b for b in client.batches.list().data if b.metadata.get("webhook_url", "").startswith("http://10.")]


def test_a_batch_that_fails_at_creation_sends_batch_failed(server: ServerProcess) -> None:
    receiver = Receiver([])
    try:
        client = api(server)
        uploaded = client.files.create(file=("in.jsonl", b'{"custom_id": "a"}\n'), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/classify", completion_window="24h",
                                      metadata={"webhook_url": receiver.url})
        assert batch.status == "failed"
        wait(server, batch.id, lambda b: len(b.model_extra["webhook_attempts"]) >= 1)
    finally:
        receiver.close()
    [(headers, body)] = receiver.received
    assert json.loads(body)["type"] == "batch.failed" and verified(headers, body)
    assert headers["webhook-id"] == f"msg_{batch.id}_failed"


def test_webhook_urls_the_allow_list_names_by_host_any_case_or_host_and_port() -> None:
    allowed = ("Hooks.Example.org", "127.0.0.1:8123")
    check_url("https://HOOKS.example.ORG/x", allowed)
    check_url("http://127.0.0.1:8123/x", allowed)
    for url, says in (("http://127.0.0.1:8124/x", "port 8124"), ("http://127.0.0.1:99999/x", "invalid port"),
                      ("http://127.0.0.1:abc/x", "invalid port")):
        with pytest.raises(WebhookRefused, match=says):
            check_url(url, allowed)


def test_a_whsec_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="must be base64"):
        secret_bytes("whsec_not base64!")
    assert secret_bytes("whsec_" + base64.b64encode(SECRET).decode()) == SECRET and secret_bytes("raw") == b"raw"
