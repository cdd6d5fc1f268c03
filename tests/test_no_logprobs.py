"""A server that answers without log-probabilities (some OpenAI-compatible servers, or vLLM
with --max-logprobs 0): every capability still answers, from the word or schema the server
chose, its probability null; nothing is retried for a gap retrying cannot fill; /health says so."""
from __future__ import annotations

import time

import pytest

from classifier.capabilities import CAPABILITIES
from classifier.llm.server import VLLMServerProcessor
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings, EngineSettings

from .fault_server import FaultServer, schema_answer
from .trees import training

RETRY_DEADLINE = 20.0  # far longer than the test may take: a retried gap would show as slowness


@pytest.mark.parametrize("strategy", ["select", "score"])
async def test_every_capability_answers_with_a_null_probability_and_no_retry(strategy: str) -> None:
    with FaultServer(models=["m"], answer=schema_answer) as server:
        server.logprobs = False
        engine = EngineSettings(backend="vllm-server", server_urls=(server.url,), max_concurrent=8,
                                request_timeout=5.0, retry_deadline=RETRY_DEADLINE)
        async with VLLMServerProcessor(engine) as proc:
            service = ClassificationService(proc, {"topics": training()}, ClassifierSettings(strategy=strategy))
            started = time.monotonic()
            body = await service.classify(["The trainer rushed and a colleague threatened me",
                                           "Lunch was cold"], list(CAPABILITIES))
            elapsed = time.monotonic() - started
            health = await proc.health(probe=False)
        errors = [r.get("error") for r in body["results"] if "error" in r]
        assert errors == [] and elapsed < RETRY_DEADLINE / 2 and proc.usage.errors == 0
        for result in body["results"]:
            for key in ("alerts", "recommendations", "trends"):
                assert result[key]["probability"] is None
                assert all(item["probability"] is None for item in result[key][key])
            nodes = result["classification_result"]["node_results"].values()
            assert all(node["probability"] is None and node["confidence"] == 3 for node in nodes)
        assert any(r["classification_result"]["classification_paths"] for r in body["results"])
        assert health.detail["log_probabilities"].startswith("not given")
