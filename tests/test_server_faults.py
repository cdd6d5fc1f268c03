"""VLLMServerProcessor against scripted faulty servers: retries, bounds, balancing, ejection."""
from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from classifier.llm.base import Prompt, process_in_batches
from classifier.llm.errors import BackendUnavailable, ConfigurationError, ModelNotFound
from classifier.llm.fairness import Requester, requester
from classifier.llm.server import VLLMServerProcessor, normalise_url
from classifier.settings import EngineSettings

from .fault_server import ECHO_SCHEMA, FaultServer

BACKOFF = 0.01  # seconds: the retry and probe policy of production, a hundred times faster
SLACK = 1.0  # seconds a loaded CI machine may add to a bound that is met with no load


def settings(*urls: str, **overrides: Any) -> EngineSettings:
    values: dict[str, Any] = dict(
        backend="vllm-server",
        server_urls=urls,
        max_concurrent=4,
        request_timeout=2.0,  # generous: CI machines are shared; timing tests set their own
        retry_deadline=0.2,
    )
    return EngineSettings(**(values | overrides))


def processor(*urls: str, **overrides: Any) -> VLLMServerProcessor:
    return VLLMServerProcessor(
        settings(*urls, **overrides), retry_backoff=BACKOFF, max_backoff=0.05, probe_timeout=2.0
    )


def prompts(*comments: str) -> list[Prompt]:
    return [Prompt(instructions="Echo the comment.", comment=c) for c in comments]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(models=["model-a"]) as srv:
        yield srv


@pytest.fixture
def second() -> Iterator[FaultServer]:
    with FaultServer(models=["model-a"]) as srv:
        yield srv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/", "http://h:8000/v1"),
        ("http://h:8000/v1/", "http://h:8000/v1"),
        ("https://h/proxy/v1", "https://h/proxy/v1"),
    ],
)
def test_url_is_normalised_to_v1(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://h/v1", "http:///v1", ""])
def test_url_that_is_not_http_is_rejected_showing_the_form(url: str) -> None:
    with pytest.raises(ConfigurationError, match="http://host:port/v1"):
        VLLMServerProcessor(settings(url))


async def test_results_keep_order_and_carry_the_request_parameters(server: FaultServer) -> None:
    comments = [f"comment {i}" for i in range(10)] + ["comment 3"]
    async with processor(server.url) as proc:
        results = await proc.process_with_schema(prompts(*comments), ECHO_SCHEMA, max_tokens=17)
    assert [r.value for r in results] == [{"echo": c} for c in comments]
    assert proc.model == "model-a"  # llm=None: the server's model
    body = server.bodies[0]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": ECHO_SCHEMA},
    }
    assert (body["temperature"], body["seed"], body["max_tokens"]) == (0.0, 42, 17)
    assert body["messages"][0] == {"role": "system", "content": "Echo the comment."}
    assert (proc.usage.llm_calls, proc.usage.prompt_tokens, proc.usage.completion_tokens) == (11, 110, 55)
    assert proc.usage.cached_prompt_tokens == 11 * 8  # the server's prompt_tokens_details
    assert proc.usage.errors == 0


async def test_5xx_429_and_invalid_json_are_retried_then_succeed(server: FaultServer) -> None:
    server.script("500", "429", "invalid")
    async with processor(server.url) as proc:
        [result] = await proc.process_with_schema(prompts("hello"), ECHO_SCHEMA)
    assert result.value == {"echo": "hello"}
    assert server.requests == 4


@pytest.mark.parametrize("status", ["429", "503"])
async def test_busy_server_is_retried_no_sooner_than_its_retry_after(server: FaultServer, status: str) -> None:
    server.script(status)
    server.retry_after = "0.3"
    async with processor(server.url, retry_deadline=2) as proc:
        started = time.monotonic()
        [result] = await proc.process_with_schema(prompts("hello"), ECHO_SCHEMA)
        elapsed = time.monotonic() - started
    assert result.value == {"echo": "hello"} and server.requests == 2
    assert 0.3 <= elapsed < 0.3 + SLACK  # the asked wait, not the 0.01 s backoff


async def test_retry_after_longer_than_a_request_timeout_is_cut_to_it(server: FaultServer) -> None:
    server.script("429")
    server.retry_after = "3600"
    async with processor(server.url, request_timeout=0.2, retry_deadline=2) as proc:
        started = time.monotonic()
        [result] = await proc.process_with_schema(prompts("hello"), ECHO_SCHEMA)
        elapsed = time.monotonic() - started
    assert result.ok and 0.2 <= elapsed < 0.2 + SLACK


async def test_failure_stays_with_its_item_after_the_retry_deadline(server: FaultServer) -> None:
    server.per_comment["bad"] = "500"
    async with processor(server.url, retry_deadline=0.3) as proc:
        started = time.monotonic()
        results = await proc.process_with_schema(prompts("good", "bad", "fine"), ECHO_SCHEMA)
        elapsed = time.monotonic() - started
    assert [r.value for r in results] == [{"echo": "good"}, None, {"echo": "fine"}]
    assert server.url in results[1].error and "HTTP 500" in results[1].error
    attempts = sum(b["messages"][-1]["content"] == "bad" for b in server.bodies)
    assert attempts >= 4 and f"gave up after {attempts} attempts" in results[1].error
    assert "retry deadline is 0.3 s" in results[1].error and 0.2 <= elapsed < 0.3 + SLACK
    assert proc.usage.errors == 1


@pytest.mark.parametrize(("fault", "message"), [("invalid", "not JSON"), ("empty", "without a choice")])
async def test_bad_output_is_retried_then_a_per_item_error(server: FaultServer, fault: str, message: str) -> None:
    server.per_comment["x"] = fault
    async with processor(server.url) as proc:
        [result] = await proc.process_with_schema(prompts("x"), ECHO_SCHEMA)
    assert message in result.error and server.url in result.error
    assert server.requests >= 3 and f"gave up after {server.requests} attempts" in result.error


async def test_output_cut_at_max_tokens_is_not_retried(server: FaultServer) -> None:
    server.per_comment["x"] = "cut"
    async with processor(server.url) as proc:
        [result] = await proc.process_with_schema(prompts("x"), ECHO_SCHEMA, max_tokens=5)
    assert "max_tokens=5" in result.error
    assert server.requests == 1


async def test_400_is_not_retried_and_shows_the_server_message(server: FaultServer) -> None:
    server.per_comment["long"] = "400"
    async with processor(server.url) as proc:
        results = await proc.process_with_schema(prompts("long", "short"), ECHO_SCHEMA)
    assert "HTTP 400" in results[0].error and "maximum context length" in results[0].error
    assert results[1].ok
    assert server.requests == 2


async def test_hang_ends_in_a_timeout_error_within_the_bound(server: FaultServer) -> None:
    server.per_comment["stuck"] = "hang"
    async with processor(server.url, request_timeout=0.3, retry_deadline=0.35) as proc:
        started = time.monotonic()
        results = await proc.process_with_schema(prompts("stuck", "quick"), ECHO_SCHEMA)
        elapsed = time.monotonic() - started
    assert "no answer within 0.3 s" in results[0].error and server.url in results[0].error
    assert results[1].value == {"echo": "quick"}
    assert 0.6 <= elapsed < 0.6 + SLACK  # two timeouts and one short backoff


async def test_unreachable_url_fails_start_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = processor(url)
    with pytest.raises(BackendUnavailable) as info:
        await proc.start()
    assert url in str(info.value) and "http://host:port/v1" in str(info.value)


async def test_wrong_path_fails_start_with_the_status(server: FaultServer) -> None:
    proc = processor(server.url.removesuffix("/v1") + "/api")
    with pytest.raises(BackendUnavailable, match="HTTP 404"):
        await proc.start()


async def test_wrong_model_fails_start_listing_the_served_models() -> None:
    with FaultServer(models=["alpha", "beta"]) as srv:
        proc = processor(srv.url, llm="gamma")
        with pytest.raises(ModelNotFound, match="'gamma'.*alpha, beta"):
            await proc.start()


async def test_api_key_is_sent_and_a_refused_one_fails_start_saying_so() -> None:
    with FaultServer(models=["model-a"], api_key="s3cret") as srv:
        async with processor(srv.url, server_api_key="s3cret") as proc:
            [result] = await proc.process_with_schema(prompts("hi"), ECHO_SCHEMA)
        assert result.value == {"echo": "hi"}
        with pytest.raises(BackendUnavailable, match=f"{srv.url} refused the API key.*--vllm-api-key"):
            await processor(srv.url).start()


async def test_concurrency_is_bounded_by_max_concurrent(server: FaultServer) -> None:
    server.delay = 0.05
    async with processor(server.url, max_concurrent=4) as proc:
        results = await proc.process_with_schema(prompts(*map(str, range(24))), ECHO_SCHEMA)
    assert all(r.ok for r in results)
    assert server.max_concurrency == 4
    assert proc.peak_in_flight == 4


async def test_load_goes_to_the_server_with_fewest_in_flight(server: FaultServer, second: FaultServer) -> None:
    server.delay, second.delay = 0.3, 0.02
    async with processor(server.url, second.url, max_concurrent=4) as proc:
        results = await proc.process_with_schema(prompts(*map(str, range(40))), ECHO_SCHEMA)
    assert all(r.ok for r in results)
    assert server.requests + second.requests == 40
    assert second.requests > 3 * server.requests > 0
    assert server.max_concurrency <= 2


async def test_equal_servers_share_the_load_evenly(server: FaultServer, second: FaultServer) -> None:
    server.delay = second.delay = 0.02
    async with processor(server.url, second.url, max_concurrent=4) as proc:
        await proc.process_with_schema(prompts(*map(str, range(40))), ECHO_SCHEMA)
    assert abs(server.requests - second.requests) <= 4


async def test_failing_server_is_ejected_then_readmitted(server: FaultServer, second: FaultServer) -> None:
    async with processor(server.url, second.url, max_concurrent=1) as proc:
        server.down = True
        results = await proc.process_with_schema(prompts(*map(str, range(20))), ECHO_SCHEMA)
        assert all(r.ok for r in results)  # each failure was retried on the other server
        items = sum(body["messages"][-1]["content"] != "ping" for body in server.bodies)
        assert items == 3  # ejected after three failures in a row
        # Back up, listing the model, but its completions still fail (the probe's "ping" among them):
        server.down, server.per_comment["ping"] = False, "503"
        probes = server.requests
        await wait_until(lambda: server.requests >= probes + 2)  # probed in the background: one-token completions
        health = await proc.health()
        assert health.detail["servers"][0]["answers"] is True and health.detail["servers"][0]["healthy"] is False
        assert health.ok, "the other server answers; /ready does not re-admit a server that only lists its model"

        del server.per_comment["ping"]  # completions work again: the background probe re-admits it
        await wait_until(lambda: proc._servers.all[0].healthy)
        before = server.requests
        await proc.process_with_schema(prompts(*map(str, range(20))), ECHO_SCHEMA)
    assert server.requests - before >= 8  # it gets its share again


async def test_when_every_server_is_ejected_requests_still_try(server: FaultServer) -> None:
    async with processor(server.url) as proc:
        server.down = True
        await proc.process_with_schema(prompts("a", "b"), ECHO_SCHEMA)  # many failures: ejected
        assert not (await proc.health()).ok
        before = server.requests
        [result] = await proc.process_with_schema(prompts("c"), ECHO_SCHEMA)
    assert server.requests > before
    assert "HTTP 503" in result.error and server.url in result.error


async def test_stopped_server_fails_items_fast_and_is_taken_back_after_restart(server: FaultServer) -> None:
    async with processor(server.url) as proc:
        server.stop()
        started = time.monotonic()
        results = await proc.process_with_schema(prompts("a", "b", "c"), ECHO_SCHEMA)
        assert time.monotonic() - started < SLACK  # no retries until the deadline
        assert all("connection failed" in r.error and server.url in r.error for r in results)
        health = await proc.health()
        assert health.detail["servers"] == [{"url": server.url, "healthy": False, "answers": False, "in_flight": 0}]
        assert not health.ok

        server.start()  # same port
        await wait_until(lambda: server.model_requests > 0)  # the background probe found it
        results = await proc.process_with_schema(prompts("d"), ECHO_SCHEMA)
        assert results[0].value == {"echo": "d"}
        assert (await proc.health()).ok


async def test_health_names_backend_model_and_servers(server: FaultServer, second: FaultServer) -> None:
    async with processor(server.url, second.url) as proc:
        health = await proc.health()
    assert (health.ok, health.backend, health.model) == (True, "vllm-server", "model-a")
    assert [s["url"] for s in health.detail["servers"]] == [server.url, second.url]


async def test_use_before_start_is_an_error_not_a_hang(server: FaultServer) -> None:
    with pytest.raises(Exception, match="start"):
        await processor(server.url).process_with_schema(prompts("a"), ECHO_SCHEMA)


async def test_against_a_fault_mix_every_item_comes_back_right(server: FaultServer, second: FaultServer) -> None:
    """1 request in 5 answers HTTP 500 and 1 in 7 non-JSON, on both servers: retried by
    deadline, preferring the other server, all 100 items come back right."""
    for srv, seed in ((server, 1), (second, 2)):
        srv.fault_rates(seed, {"500": 1 / 5, "invalid": 1 / 7})
    comments = [f"comment {i}" for i in range(100)]
    async with processor(server.url, second.url, retry_deadline=60, max_concurrent=16) as proc:
        results = await proc.process_with_schema(prompts(*comments), ECHO_SCHEMA)
    assert [r.value for r in results] == [{"echo": c} for c in comments]
    assert server.requests + second.requests > 110, "faults were injected and retried"


async def test_a_retry_prefers_another_server(server: FaultServer, second: FaultServer) -> None:
    server.per_comment["x"] = second.per_comment["x"] = "500"
    async with processor(server.url, second.url, max_concurrent=1, retry_deadline=0.05) as proc:
        await proc.process_with_schema(prompts("x"), ECHO_SCHEMA)
    order = [srv for _, srv in sorted([(b["_seen"], "a") for b in server.bodies] + [(b["_seen"], "b") for b in second.bodies])]
    assert len(order) >= 2 and all(x != y for x, y in zip(order, order[1:])), order


async def test_batch_size_bounds_what_one_call_carries_to_the_servers(server: FaultServer) -> None:
    server.delay = 0.05
    async with processor(server.url, max_concurrent=16) as proc:
        results = await process_in_batches(proc, prompts(*map(str, range(10))), ECHO_SCHEMA, max_tokens=8,
                                           batch_size=4)
    assert [r.value for r in results] == [{"echo": str(k)} for k in range(10)]
    assert server.max_concurrency == 4, "at most one chunk of 4 in flight, though 16 slots were free"


async def test_tokenizer_requests_share_the_max_concurrent_slots(server: FaultServer) -> None:
    server.delay = 0.05
    long = "word " * 400
    async with processor(server.url, max_length=600, max_concurrent=2) as proc:
        results = await proc.process_with_schema(prompts(*(f"{k} {long}" for k in range(8))), ECHO_SCHEMA,
                                                 max_tokens=100)
    assert all(r.ok and r.truncated for r in results)
    assert server.tokenize_requests >= 8 and server.max_tokenize_concurrency <= 2


async def test_a_comment_too_long_for_the_context_is_shortened_and_flagged(server: FaultServer) -> None:
    long = "word " * 400  # 2000 characters, 500 tokens: the stand-in counts a token per 4 characters
    async with processor(server.url, max_length=600) as proc:
        short, cut = await proc.process_with_schema(prompts("short", long), ECHO_SCHEMA, max_tokens=100)
        assert short.value == {"echo": "short"} and not short.truncated
        assert server.tokenize_requests == 0 or cut.truncated, "a short comment asks no tokenizer"
        assert cut.ok and cut.truncated and long.startswith(cut.value["echo"])
        fixed = 10 + 5 + 10  # the stand-in: 10 tokens per message, "Echo the comment." is 5 tokens
        assert len(cut.value["echo"]) == 4 * (600 - 100 - fixed), "as long as fits, no shorter"
        assert proc.usage.truncations == 1
        server.max_model_len = 300  # the server's own window is the smaller one
        [smaller] = await proc.process_with_schema(prompts(long), ECHO_SCHEMA, max_tokens=100)
        assert smaller.truncated and len(smaller.value["echo"]) == 4 * (300 - 100 - fixed)
        [no_room] = await proc.process_with_schema([Prompt("x" * 2000, long)], ECHO_SCHEMA, max_tokens=100)
        assert not no_room.ok and "leave no room for the comment" in no_room.error


async def answered_as(proc: VLLMServerProcessor, who: Requester, comment: str) -> dict[str, Any] | None:
    token = requester.set(who)
    try:
        return (await proc.process_with_schema(prompts(comment), ECHO_SCHEMA))[0].value
    finally:
        requester.reset(token)


async def test_only_a_small_requests_prompts_carry_a_priority(server: FaultServer) -> None:
    async with processor(server.url) as proc:
        assert await answered_as(proc, Requester("a file"), "file") == {"echo": "file"}
        assert await answered_as(proc, Requester("one comment", small=True), "one") == {"echo": "one"}
        health = await proc.health()
    assert [body.get("priority") for body in server.bodies] == [None, -1]  # lower runs earlier in vLLM
    assert health.detail["priority"] == {server.url: "accepted"}


async def test_a_server_that_refuses_priorities_is_asked_again_without_and_from_then_on(server: FaultServer) -> None:
    server.refuse_priority = True
    async with processor(server.url) as proc:
        assert await answered_as(proc, Requester("one comment", small=True), "one") == {"echo": "one"}
        assert await answered_as(proc, Requester("another", small=True), "two") == {"echo": "two"}
        health = await proc.health()
    assert [body.get("priority") for body in server.bodies] == [-1, None, None]
    assert health.detail["priority"] == {server.url: "refused: small requests go in arrival order"}
    assert proc.usage.errors == 0
