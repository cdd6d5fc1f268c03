"""The prototype's clients against the real server process: its command line, the fields it
reads from /, /health, /stats, /capabilities and /classify (with a `config_path`), and the
HTTP limits a client meets (connection bound, bounded drain on SIGTERM). Two deterministic
stand-in LLM servers replace vLLM, so no engine is needed."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from classifier.taxonomy import load_taxonomy

from .fault_server import FaultServer, schema_answer
from .server_process import ROOT, ServerProcess

TOPICS = ROOT / "configs" / "topics.json"


@pytest.fixture
def llms() -> Iterator[tuple[FaultServer, FaultServer]]:
    with FaultServer(models=["m"], answer=schema_answer) as one, FaultServer(models=["m"], answer=schema_answer) as two:
        yield one, two


def types_of(body: dict[str, Any], fields: dict[str, type | tuple[type, ...]]) -> None:
    for name, kind in fields.items():
        assert name in body, f"missing {name}: {body}"
        assert isinstance(body[name], kind), f"{name}: {body[name]!r} is not {kind}"


def test_the_prototypes_command_line_and_fields(llms: tuple[FaultServer, FaultServer], tmp_path) -> None:
    one, two = llms
    restaurants = ROOT / "configs" / "restaurants.json"
    args = ["--default-config", "configs/topics.json", "--vllm-server-url", f"{one.url},{two.url}",
            "--backend", "vllm-server", "--taxonomy", f"restaurants={restaurants}"]
    with ServerProcess(args) as server:
        root = httpx.get(f"{server.url}/").json()
        types_of(root, {"service": str, "version": str, "endpoints": dict})

        health = httpx.get(f"{server.url}/health").json()
        types_of(health, {"status": str, "processor_loaded": bool, "gpu_count": int, "capabilities_available": list,
                          "requests_processed": int, "uptime_seconds": float, "default_config": str})
        assert health["status"] == "healthy" and health["processor_loaded"] is True
        assert health["default_config"] == str(TOPICS) and "stem_polarity" in health["capabilities_available"]
        probes = one.model_requests + two.model_requests
        for _ in range(5):
            httpx.get(f"{server.url}/health")
        assert one.model_requests + two.model_requests == probes, "/health never calls the LLM servers"
        assert httpx.get(f"{server.url}/ready").status_code == 200

        caps = httpx.get(f"{server.url}/capabilities").json()
        assert {t["name"] for t in caps["taxonomies"]} == {"topics", "restaurants"}

        # The prototype's batch client sends the --config path it was given.
        texts = ["The waiter was rude but the pasta was great", "Room too cold"]
        response = httpx.post(f"{server.url}/classify", timeout=60, json={
            "texts": texts, "capabilities": ["classification", "stem_polarity"], "config_path": str(restaurants)})
        assert response.status_code == 200, response.text
        body = response.json()
        types_of(body, {"results": list, "processing_time": float, "batch_info": dict, "config_used": str})
        assert body["config_used"] == "restaurants" and body["batch_info"]["text_count"] == 2
        for text, result in zip(texts, body["results"]):
            assert result["text"] == text and "error" not in result, result
            paths = result["classification_result"]["classification_paths"]
            assert paths and all(p.startswith(f"{load_taxonomy(restaurants).root.name}>") for p in paths)
            for node in result["classification_result"]["node_results"].values():
                assert node["is_relevant"] is True
            for polarity in result["stem_polarity"].values():
                types_of(polarity, {"polarity": str, "confidence": int, "reasoning": str, "excerpt": str})
        assert one.requests > 0 and two.requests > 0, "both servers of the comma-separated list are used"

        refused = httpx.post(f"{server.url}/classify", json={"texts": ["x"], "config_path": "/etc/passwd"})
        assert refused.status_code == 422 and "never reads files named by clients" in refused.json()["detail"]

        stats = httpx.get(f"{server.url}/stats").json()
        types_of(stats, {"total_requests": int, "total_texts_processed": int, "average_processing_time": float,
                         "requests_by_capability": dict, "uptime_seconds": float, "configs_cached": int})
        assert (stats["total_requests"], stats["total_texts_processed"], stats["configs_cached"]) == (1, 2, 2)
        assert stats["requests_by_capability"] == {"classification": 1, "stem_polarity": 1}
        assert server.stop() == 0


def test_sigterm_drains_within_its_bound_then_answers_each_text_left_with_an_error(llms) -> None:
    one, two = llms
    one.per_comment["stuck"] = two.per_comment["stuck"] = "hang"  # hangs past the drain timeout
    args = ["--backend", "vllm-server", "--vllm-server-url", f"{one.url},{two.url}", "--drain-timeout", "1"]
    with ServerProcess(args) as server:
        answer: dict[str, httpx.Response] = {}
        request = threading.Thread(target=lambda: answer.update(
            response=httpx.post(f"{server.url}/classify", json={"texts": ["stuck", "fine"]}, timeout=60)))
        request.start()
        while one.requests + two.requests == 0:
            time.sleep(0.02)
        time.sleep(0.3)  # both texts are in the pass now
        began = time.monotonic()
        assert server.stop() == 0
        stopped_in = time.monotonic() - began
        request.join(10)
    assert stopped_in < 8, f"SIGTERM took {stopped_in:.1f} s with a 1 s drain timeout"
    body = answer["response"].json()
    assert answer["response"].status_code == 200
    assert [r["text"] for r in body["results"]] == ["stuck", "fine"]
    assert all("the server shut down before this text was processed" in r["error"] for r in body["results"])


def test_connections_past_the_bound_get_503_not_memory(llms) -> None:
    one, two = llms
    one.delay = two.delay = 0.5
    args = ["--backend", "vllm-server", "--vllm-server-url", one.url, "--max-connections", "2", "--batch-timeout", "0"]
    with ServerProcess(args) as server:

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                answers = await asyncio.gather(*(client.post(f"{server.url}/classify", json={"texts": [f"t{k}"]})
                                                  for k in range(6)))
            return [a.status_code for a in answers]

        alone = httpx.post(f"{server.url}/classify", json={"texts": ["alone"]}, timeout=30)
        statuses = asyncio.run(burst())
        after = httpx.post(f"{server.url}/classify", json={"texts": ["after"]}, timeout=30)
    assert alone.status_code == 200 and after.status_code == 200
    assert 503 in statuses, statuses
