"""The HTTP face through httpx's ASGI transport over a scripted processor: every route, every
bad-input case, the API key, coalescing of concurrent requests, and the queue bound."""
from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import AsyncIterator

import httpx
import pytest

from classifier.api import FixedBackend, create_app
from classifier.api.rate_limits import RateLimitError, parse_limits
from classifier.capabilities import CAPABILITIES
from classifier.llm.base import Health
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings, ServerSettings, Settings
from classifier.taxonomy import load_taxonomy, taxonomy_from_dict
from tests.scripted import ScriptedProcessor, oracle
from tests.test_service import GOLD, RUSHED, capability_answers
from tests.trees import training

KEY = "s3cret"
OTHER_TREE = {"name": "Shop", "children": [{"name": "Prices"}, {"name": "Staff"}]}


def settings(**server) -> Settings:
    return Settings(server=ServerSettings(**{"batch_timeout": 0.0, **server}))


def taxonomies():
    return {"topics": training(), "shop": taxonomy_from_dict(OTHER_TREE, name="shop")}


@asynccontextmanager
async def running(processor=None, **server) -> AsyncIterator[tuple[httpx.AsyncClient, ScriptedProcessor]]:
    """The app with its lifespan running, and a client talking to it in-process."""
    processor = processor or ScriptedProcessor(oracle(GOLD, capability_answers))
    app = create_app(settings(**server), taxonomies(), FixedBackend(processor))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app
            yield client, processor


async def test_classify_answers_the_wire_contract_for_every_capability():
    async with running() as (client, proc):
        every = list(CAPABILITIES)
        response = await client.post("/classify", json={"texts": [RUSHED, "Great content"], "capabilities": every})
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        body = response.json()
        direct = await ClassificationService(
            ScriptedProcessor(oracle(GOLD, capability_answers)), taxonomies(), ClassifierSettings()
        ).classify([RUSHED, "Great content"], every)
        assert set(body) == {"results", "processing_time", "batch_info", "config_used"}
        assert body["results"] == direct["results"]
        assert body["batch_info"] == {"text_count": 2, "capabilities_executed": every}
        assert body["config_used"] == "topics" and body["processing_time"] >= 0
        first = body["results"][0]
        assert set(first) == {"text", "classification_result", "recommendations", "alerts", "trends",
                              "stem_polarity", "stem_recommendations", "stem_trends"}
        assert first["stem_polarity"]["Delivery>Pace"]["polarity"] == "Negative"


async def test_defaults_project_name_taxonomy_and_equal_texts():
    async with running() as (client, _):
        body = (await client.post("/classify", json={"texts": ["Great content", "Great content"]})).json()
        assert body["batch_info"]["capabilities_executed"] == ["classification"]
        assert [r["classification_result"]["classification_paths"] for r in body["results"]] == [
            ["Training feedback>Content"], ["Training feedback>Content"]]
        body = (await client.post("/classify", json={"texts": [RUSHED], "project_name": "Acme"})).json()
        assert body["results"][0]["classification_result"]["classification_paths"][0] == "Acme>Delivery"
        body = (await client.post("/classify", json={"texts": ["x"], "taxonomy": "shop", "capabilities": None})).json()
        assert body["config_used"] == "shop" and body["results"][0]["classification_result"]["classification_paths"] == []


TOO_LONG = "x" * 101


@pytest.mark.parametrize(
    ("content", "headers", "status", "says"),
    [
        (json.dumps({"texts": []}), None, 422, "texts is empty: send at least one text"),
        (json.dumps({"texts": ["ok", 5]}), None, 422, "texts[1]: Input should be a valid string"),
        (json.dumps({"texts": "just one"}), None, 422, "texts: Input should be a valid list"),
        (json.dumps({"text": ["wrong key"]}), None, 422, "texts: Field required"),
        (json.dumps({"texts": ["ok", TOO_LONG, TOO_LONG]}), None, 413,
         "texts[1] has 101 characters (and 1 more); the limit is 100 per text"),
        (json.dumps({"texts": ["a"] * 4}), None, 413, "4 texts in one request; the limit is 3"),
        (json.dumps({"texts": ["a"], "capabilities": ["sentiment"]}), None, 422,
         "unknown capability 'sentiment'; available: classification, recommendations"),
        (json.dumps({"texts": ["a"], "taxonomy": "/etc/passwd"}), None, 422,
         "unknown taxonomy '/etc/passwd'; loaded: topics, shop"),
        ('{"texts": ["a",]}', None, 400, "the body is not valid JSON"),
        ("", None, 422, "the body is empty"),
        (json.dumps(["a", "b"]), None, 422, "body: Input should be a valid dictionary"),
        (json.dumps({"texts": ["a"]}), {"content-type": "text/plain"}, 415,
         "Content-Type: application/json (got text/plain)"),
        ("texts=a", {"content-type": "application/x-www-form-urlencoded"}, 415, "Content-Type: application/json"),
        ("x" * 5000, {"content-length": "99999999"}, 413, "the request body limit is"),
    ],
)
async def test_bad_input_gets_a_4xx_that_says_what_to_fix_and_the_server_stays_up(content, headers, status, says):
    async with running(max_texts=3, max_text_chars=100) as (client, proc):
        response = await client.post("/classify", content=content,
                                     headers=headers or {"content-type": "application/json"})
        assert response.status_code == status, response.text
        assert says in response.json()["detail"]
        assert not proc.calls, "bad input never reaches the LLM"
        assert (await client.post("/classify", json={"texts": ["Great content"]})).status_code == 200


async def test_a_body_streamed_past_the_limit_is_refused():
    async def chunks():
        for _ in range(1100):  # 1.1 MiB, past the bound of 1 text of 10 characters (1 MiB + 60 bytes)
            yield b"x" * 1024

    async with running(max_texts=1, max_text_chars=10) as (client, _):
        response = await client.post("/classify", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413 and "the request body limit is" in response.json()["detail"]


async def test_each_limit_a_body_hits_is_named():
    async with running(max_body_bytes=1000, max_upload_bytes=2000, max_bodies_in_flight_bytes=10**6) as (client, _):
        big = await client.post("/classify", json={"texts": ["x" * 1500]})
        assert big.status_code == 413 and "the request body limit is 1000 (--max-body-mb)" in big.json()["detail"]
        upload = await client.post("/v1/files", headers={"content-length": "5000"}, content=b"x" * 5000)
        assert upload.status_code == 413 and "the upload limit is 2000 (--max-upload-mb)" in upload.json()["detail"]


async def test_bodies_in_flight_are_bounded_all_together():
    gate = asyncio.Event()

    async def slow_body():
        yield b'{"texts": ["' + b"x" * 600
        await gate.wait()
        yield b'"]}'

    async with running(max_body_bytes=10_000, max_bodies_in_flight_bytes=1000) as (client, _):
        first = asyncio.create_task(client.post("/classify", content=slow_body(),
                                                headers={"content-type": "application/json"}))
        await asyncio.sleep(0.1)
        second = await client.post("/classify", content=b'{"texts": ["' + b"y" * 600 + b'"]}',
                                   headers={"content-type": "application/json"})
        assert second.status_code == 503 and "--max-bodies-in-flight-mb" in second.json()["detail"]
        assert second.headers["retry-after"] == "1"
        gate.set()
        assert (await first).status_code == 200
        assert (await client.post("/classify", json={"texts": ["Great content"]})).status_code == 200, "released"


async def test_health_capabilities_stats_metrics_and_docs():
    async with running() as (client, proc):
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json() == {
            "status": "healthy", "processor_loaded": True, "gpu_count": 0, "capabilities_available": list(CAPABILITIES),
            "requests_processed": 0, "uptime_seconds": health.json()["uptime_seconds"], "default_config": None,
            "backend": "scripted", "model": "scripted", "gpus": [], "detail": {}}
        assert isinstance(health.json()["uptime_seconds"], float)
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "backend": "scripted", "model": "scripted", "detail": {}}
        root = (await client.get("/")).json()
        assert root["service"] == "LLM topic classifier" and root["version"]
        assert {"POST /classify", "GET /health", "GET /ready", "GET /stats"} <= set(root["endpoints"])

        caps = (await client.get("/capabilities")).json()
        assert [c["name"] for c in caps["capabilities"]] == list(CAPABILITIES)
        assert caps["capabilities"][4] == {"name": "stem_polarity", "result_key": "stem_polarity",
                                           "requires": ["classification"], "default": False}
        assert caps["taxonomies"][0] == {"name": "topics", "root": "Training feedback", "nodes": 7, "leaves": 5,
                                         "depth": 2, "default": True}

        await client.post("/classify", json={"texts": [RUSHED, "Great content"], "capabilities": ["alerts"]})
        await client.post("/classify", json={"texts": []})
        stats = (await client.get("/stats")).json()
        assert stats["requests"] == 1 and stats["texts"] == 2 and stats["text_errors"] == 0
        assert stats["total_requests"] == 1 and stats["total_texts_processed"] == 2
        assert stats["requests_by_capability"] == {"alerts": 1} and stats["configs_cached"] == 2
        assert 0 <= stats["average_processing_time"] < 5 and isinstance(stats["uptime_seconds"], float)
        assert (await client.get("/health")).json()["requests_processed"] == 1
        assert stats["queued_texts"] == 0 and stats["batching"]["batches"] == 1
        assert stats["llm"]["llm_calls"] == proc.usage.llm_calls > 0

        metrics = await client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert 'classifier_http_requests_total{method="POST",route="/classify",status="200"} 1.0' in text
        assert 'classifier_http_requests_total{method="POST",route="/classify",status="422"} 1.0' in text
        assert 'classifier_http_request_seconds_bucket{le="0.005",route="/classify"}' in text
        assert 'classifier_texts_total{backend="scripted"} 2.0' in text
        assert f'classifier_llm_calls_total{{backend="scripted"}} {float(proc.usage.llm_calls)}' in text
        assert f'classifier_llm_tokens_total{{backend="scripted",kind="prompt"}} {float(proc.usage.prompt_tokens)}' in text
        assert 'classifier_llm_tokens_total{backend="scripted",kind="cached_prompt"} 0.0' in text
        assert 'classifier_llm_errors_total{backend="scripted"} 0.0' in text

        assert "swagger" in (await client.get("/docs")).text.lower()
        assert "/classify" in (await client.get("/openapi.json")).json()["paths"]
        assert (await client.get("/nowhere")).status_code == 404


async def test_ready_is_503_when_the_backend_does_not_answer_and_health_never_probes():
    class Down(ScriptedProcessor):
        probes: list[bool]

        async def health(self, *, probe: bool = True) -> Health:
            self.probes.append(probe)
            raise ConnectionError("refused")

    down = Down(lambda p, s: "unused")
    down.probes = []
    async with running(down) as (client, _):
        response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        assert response.json()["detail"] == {"error": "the backend's health check failed; the server log says why"}
        health = await client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "healthy"
        assert health.json()["processor_loaded"] is False
        assert down.probes == [True, False], "/health asks the processor without probing"


async def test_config_path_picks_a_loaded_taxonomy_and_is_never_opened(tmp_path):
    loaded = tmp_path / "shop.json"
    loaded.write_text(json.dumps(OTHER_TREE))
    trees = {"topics": training(), "shop": load_taxonomy(loaded)}
    app = create_app(settings(), trees, FixedBackend(ScriptedProcessor(oracle(GOLD, capability_answers))))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for named in (str(loaded), "configs/elsewhere/shop.json"):  # same path, or same file name
                body = (await client.post("/classify", json={"texts": ["x"], "config_path": named})).json()
                assert body["config_used"] == "shop", named
            secret = tmp_path / "secret.json"
            secret.write_text(json.dumps(OTHER_TREE))
            refused = await client.post("/classify", json={"texts": ["x"], "config_path": str(secret)})
            assert refused.status_code == 422
            detail = refused.json()["detail"]
            assert "never reads files named by clients" in detail and f"shop ({loaded})" in detail
            assert "--taxonomy NAME=PATH" in detail
            clash = await client.post("/classify", json={"texts": ["x"], "config_path": str(loaded), "taxonomy": "topics"})
            assert clash.status_code == 422 and "send one of them" in clash.json()["detail"]
            health = (await client.get("/health")).json()
            assert health["default_config"] is None  # the default here was built in memory


@pytest.mark.parametrize("path", ["/classify", "/capabilities", "/stats", "/metrics", "/docs", "/openapi.json"])
async def test_api_key_guards_every_route_but_health_and_ready(path):
    async with running(api_keys=(KEY,)) as (client, _):
        send = client.post if path == "/classify" else client.get
        kwargs = {"json": {"texts": ["Great content"]}} if path == "/classify" else {}
        missing = await send(path, **kwargs)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in missing.json()["detail"]
        wrong = await send(path, headers={"Authorization": "Bearer nope"}, **kwargs)
        assert wrong.status_code == 401 and wrong.json()["detail"] == "the API key is wrong"
        assert (await send(path, headers={"Authorization": f"Bearer {KEY}"}, **kwargs)).status_code == 200
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/ready")).status_code == 200


async def test_concurrent_requests_share_one_pass_each_text_in_its_requests_name():
    async with running(batch_timeout=0.2) as (client, proc):
        first, second = await asyncio.gather(
            client.post("/classify", json={"texts": [RUSHED]}),
            client.post("/classify", json={"texts": ["Great content", "Great content"], "project_name": "P"}),
        )
        assert [r["text"] for r in first.json()["results"]] == [RUSHED]
        assert [r["classification_result"]["classification_paths"] for r in second.json()["results"]] == [
            ["P>Content"], ["P>Content"]]
        root_calls = [c for c in proc.calls if "Topic path: Training feedback\n" in c.prompts[0].instructions]
        asked = sorted((c.prompts[0].comment, c.requester.name) for c in root_calls)
        assert asked[0][1] == asked[1][1] != asked[2][1], "each text asked for itself, in its own request's name"
        assert [comment for comment, _ in asked] == ["Great content", "Great content", RUSHED]
        stats = (await client.get("/stats")).json()["batching"]
        assert stats["batches"] == 1 and stats["requests"] == 2 and stats["texts"] == 3


async def test_a_failing_request_does_not_fail_its_neighbours():
    base = oracle(GOLD, capability_answers)

    def answer(prompt, schema):
        return "model output is not JSON" if prompt.comment == "poison" else base(prompt, schema)

    async with running(ScriptedProcessor(answer), batch_timeout=0.2) as (client, _):
        app = client.app
        good, bad = await asyncio.gather(
            client.post("/classify", json={"texts": ["Great content"]}),
            client.post("/classify", json={"texts": ["poison", "Great content"]}),
        )
        assert good.status_code == bad.status_code == 200
        assert "error" not in good.json()["results"][0]
        assert "model output is not JSON" in bad.json()["results"][0]["error"]
        assert "error" not in bad.json()["results"][1]

        service = app.state.serving.service
        real_run = service.run_jobs

        async def crash_on_poison(jobs, taxonomy):
            if any(job.text == "poison" for job in jobs):
                raise RuntimeError("poisoned pass")
            return await real_run(jobs, taxonomy)

        service.run_jobs = crash_on_poison
        good, bad = await asyncio.gather(
            client.post("/classify", json={"texts": ["Great content"]}),
            client.post("/classify", json={"texts": ["poison"]}),
        )
        assert good.status_code == 200 and good.json()["results"][0]["classification_result"]
        assert bad.status_code == 500 and "poisoned" not in bad.text, "a 500 never echoes the exception"
        assert bad.json()["request_id"] in bad.json()["detail"]
        assert app.state.serving.batcher.stats.isolated_failures == 1
        assert (await client.get("/health")).status_code == 200


class GatedProcessor(ScriptedProcessor):
    """Holds every call until `gate` opens: requests stay queued as long as a test wants."""

    gate: asyncio.Event

    async def process_with_schema(self, prompts, schema, *, max_tokens=256):
        await self.gate.wait()
        return await super().process_with_schema(prompts, schema, max_tokens=max_tokens)


async def test_past_the_queue_bound_the_server_answers_503_with_retry_after():
    proc = GatedProcessor(oracle(GOLD, capability_answers))
    proc.gate = asyncio.Event()
    async with running(proc, max_texts=3, max_queued_texts=4) as (client, _):
        held = asyncio.create_task(client.post("/classify", json={"texts": ["Great content"] * 3}))
        while client.app.state.serving.batcher.queued_texts < 3:
            await asyncio.sleep(0.001)
        refused = await client.post("/classify", json={"texts": ["a", "b"]})
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        assert "3 texts are queued and this request adds 2; the bound is 4" in refused.json()["detail"]
        proc.gate.set()
        assert (await held).status_code == 200
        assert (await client.post("/classify", json={"texts": ["a", "b"]})).status_code == 200


async def test_one_keys_flood_of_requests_never_fills_the_queue_for_the_others():
    proc = GatedProcessor(oracle(GOLD, capability_answers))
    proc.gate = asyncio.Event()
    async with running(proc, max_texts=4, max_queued_texts=8, api_keys=("flood", "other")) as (client, _):
        flood = {"Authorization": "Bearer flood"}
        held = [asyncio.create_task(client.post("/classify", json={"texts": ["Great content"]}, headers=flood))
                for _ in range(4)]
        while client.app.state.serving.batcher.queued_texts < 4:
            await asyncio.sleep(0.001)
        refused = await client.post("/classify", json={"texts": ["one more"]}, headers=flood)
        assert refused.status_code == 503 and "your API key's requests hold 4 of the 4" in refused.json()["detail"]
        other = asyncio.create_task(client.post("/classify", json={"texts": ["a", "b", "c"]},
                                                headers={"Authorization": "Bearer other"}))
        while client.app.state.serving.batcher.queued_texts < 7:
            await asyncio.sleep(0.001)
        proc.gate.set()
        assert all(r.status_code == 200 for r in await asyncio.gather(*held, other))


async def test_shutdown_runs_waiting_requests_and_refuses_new_ones():
    proc = ScriptedProcessor(oracle(GOLD, capability_answers))
    app = create_app(settings(batch_timeout=30.0), taxonomies(), FixedBackend(proc))
    async with app.router.lifespan_context(app):
        batcher = app.state.serving.batcher
        waiting = asyncio.create_task(batcher.classify(["Great content"]))
        while batcher.queued_texts == 0:
            await asyncio.sleep(0.001)
        await batcher.close()  # what the lifespan does on SIGTERM, well before the 30 s window
        assert waiting.done() and (await waiting)["results"][0]["classification_result"]["classification_paths"]
        with pytest.raises(Exception, match="shutting down"):
            await batcher.classify(["late"])


def test_limits_that_could_never_admit_a_request_are_refused_at_creation():
    with pytest.raises(ValueError, match="exceeds the queue bound"):
        create_app(Settings(server=replace(ServerSettings(), max_texts=10, max_queued_texts=5)), taxonomies(),
                   FixedBackend(ScriptedProcessor(lambda p, s: "x")))


async def test_a_request_may_ask_for_the_summary_of_its_results():
    async with running() as (client, _):
        body = (await client.post("/classify", json={
            "texts": [RUSHED, "Great content", "Great content", " "], "capabilities": ["stem_polarity"],
            "summary": True})).json()
        summary = body["summary"]
        assert (summary["texts"], summary["classified"], summary["skipped"]) == (4, 3, 1)
        assert summary["stems"] == {"Content": 2, "Delivery>Pace": 1, "Logistics>Catering": 1}
        assert summary["polarity"]["Content"] == {"Positive": 2}
        assert summary["paths"]["Training feedback>Content"] == 2
        plain = (await client.post("/classify", json={"texts": ["Great content"]})).json()
        assert "summary" not in plain


async def test_past_a_keys_rate_limit_the_server_answers_429_with_retry_after_per_key_and_family():
    keys = ("alice", "bob")
    async with running(api_keys=keys, rate_limits=("classify=2/minute",)) as (client, _):
        alice, bob = ({"Authorization": f"Bearer {key}"} for key in keys)
        body = {"texts": ["Great content"]}
        assert [(await client.post("/classify", json=body, headers=alice)).status_code for _ in range(2)] == [200, 200]
        refused = await client.post("/classify", json=body, headers=alice)
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert "rate limit of 2 per 1 minute for classify" in refused.json()["detail"]
        assert (await client.post("/classify", json=body, headers=bob)).status_code == 200  # another key's own window
        assert (await client.get("/stats", headers=alice)).status_code == 200  # reads are never limited
        metrics = (await client.get("/metrics", headers=alice)).text
        assert 'classifier_rate_limited_total{family="classify"} 1.0' in metrics


def test_a_rate_limit_that_cannot_be_read_is_refused_showing_the_form():
    with pytest.raises(RateLimitError, match="one of classify, files, batches, labels"):
        parse_limits(("uploads=3/minute",))
    with pytest.raises(RateLimitError, match="N/second, N/minute or N/hour"):
        parse_limits(("classify=often",))
