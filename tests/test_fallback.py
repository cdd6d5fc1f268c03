"""The fallback chain: the primary backend answers while it can; the fallback while it cannot."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from classifier.llm.chain import FallbackChain
from classifier.llm.errors import ConfigurationError
from classifier.llm.pool import ProcessorPool
from classifier.settings import EngineSettings

from .fault_server import ECHO_SCHEMA, FaultServer, schema_answer
from .server_process import ServerProcess
from .test_server_faults import processor, prompts, wait_until


@pytest.fixture
def primary() -> Iterator[FaultServer]:
    with FaultServer(models=["model-a"]) as srv:
        yield srv


@pytest.fixture
def fallback() -> Iterator[FaultServer]:
    with FaultServer(models=["model-b"]) as srv:
        yield srv


def echoes(results: list) -> list:
    return [r.value["echo"] if r.ok else r.error for r in results]


async def test_the_fallback_answers_while_the_primary_is_down_and_the_primary_again_once_back(
        primary: FaultServer, fallback: FaultServer) -> None:
    chain = FallbackChain([processor(primary.url), processor(fallback.url)])
    for link in chain.links:
        await link.start()
    try:
        assert echoes(await chain.process_with_schema(prompts("a", "b"), ECHO_SCHEMA)) == ["a", "b"]
        assert (primary.requests, fallback.requests) == (2, 0)

        primary.down = True  # every answer a 503: retried to the deadline, the server set aside
        assert echoes(await chain.process_with_schema(prompts("c", "d", "e"), ECHO_SCHEMA)) == ["c", "d", "e"]
        assert fallback.requests == 3
        [choice] = await chain.process_choice(prompts("f"), ["x", "y"])
        assert choice.ok and choice.value["choice"] in ("x", "y") and fallback.requests == 4
        asked = [body["messages"][-1]["content"] for body in primary.bodies]
        assert "f" not in asked, "while the primary is set aside only its probe's pings go to it"
        health = await chain.health(probe=False)
        assert health.ok and health.backend == "vllm-server" and health.model == "model-a"
        assert health.detail["serving"] == "vllm-server model-b"
        assert [(link["role"], link["ok"]) for link in health.detail["chain"]] == [("primary", False), ("fallback", True)]

        primary.down = False
        await wait_until(lambda: chain.links[0]._servers.all[0].healthy)  # its probe took it back
        before = fallback.requests
        assert echoes(await chain.process_with_schema(prompts("g"), ECHO_SCHEMA)) == ["g"]
        assert fallback.requests == before and primary.bodies[-1]["messages"][-1]["content"] == "g"
        assert chain.answers == [3, 4]
        assert chain.usage.llm_calls == 7
    finally:
        await chain.close()


async def test_an_items_own_failure_on_a_primary_that_is_up_is_not_sent_to_the_fallback(
        primary: FaultServer, fallback: FaultServer) -> None:
    primary.per_comment["bad"] = "400"  # the request is wrong, not the server
    chain = FallbackChain([processor(primary.url), processor(fallback.url)])
    for link in chain.links:
        await link.start()
    try:
        results = await chain.process_with_schema(prompts("ok", "bad"), ECHO_SCHEMA)
    finally:
        await chain.close()
    assert results[0].value == {"echo": "ok"} and "HTTP 400" in results[1].error
    assert fallback.requests == 0


async def test_the_pool_builds_the_chain_from_the_settings(primary: FaultServer, fallback: FaultServer) -> None:
    pool = ProcessorPool(EngineSettings(backend="vllm-server", server_urls=(primary.url,),
                                        fallback_server_urls=(fallback.url,)))
    await pool.start()
    try:
        chain = pool.processor
        assert isinstance(chain, FallbackChain)
        assert [link.model for link in chain.links] == ["model-a", "model-b"]
    finally:
        await pool.close()
    with pytest.raises(ConfigurationError, match="local engine is the primary"):
        ProcessorPool(EngineSettings(backend="local", fallback_local=True))


def test_the_server_says_who_answers_and_counts_answers_per_link(primary: FaultServer, fallback: FaultServer) -> None:
    primary.answer = fallback.answer = schema_answer
    args = ["--backend", "vllm-server", "--vllm-server-url", primary.url, "--fallback-server-url", fallback.url,
            "--no-jobs", "--retry-deadline", "1"]
    with ServerProcess(args) as server:
        primary.down = True
        response = httpx.post(f"{server.url}/classify", json={"texts": ["The soup was cold."]}, timeout=60)
        assert response.status_code == 200 and "error" not in response.json()["results"][0], response.text
        detail = httpx.get(f"{server.url}/health").json()["detail"]
        metrics = httpx.get(f"{server.url}/metrics").text
    assert detail["serving"] == "vllm-server model-b"
    assert [link["link"] for link in detail["chain"]] == ["vllm-server model-a", "vllm-server model-b"]
    assert 'classifier_llm_link_answers_total{link="vllm-server model-b",role="fallback"}' in metrics
    assert 'classifier_llm_link_answers_total{link="vllm-server model-a",role="primary"} 0.0' in metrics
    assert f"falling back to {fallback.url}" in server.log()
