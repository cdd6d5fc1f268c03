"""Labels belong to their owner, and the learning loop has one writer per owner, on the HTTP
face with the real embedding model and learned classifier (the LLM is scripted: it finds no
topic, so every topic in an answer comes from labels): two keys on one server never see or
steer each other's answers; a label posted during a retraining survives a restart; concurrent
posts and deletes lose nothing; bounds and bad input get 4xx; an answer from a label says so."""
from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import httpx
import pytest

from classifier.api import FixedBackend, create_app
from classifier.eval.gold import load_semeval, load_suggestions
from classifier.gold import OPERATOR
from classifier.gold.flag_labels import FlagLabel, FlagStore, from_flags
from classifier.gold.labels import Label
from classifier.gold.store import GoldStore
from classifier.jobs.store import JobStore
from classifier.settings import ClassifierSettings, JobSettings, ServerSettings, Settings
from tests.scripted import ScriptedProcessor

from .test_gold_loop import COMMENT, NEAR, RESTAURANTS, nothing_applies, until
from .test_service import RECOMMENDATION

SERVICE = "Restaurant reviews>Service>General"


def import_gold(data_dir: Path, shared_data: Path, count: int = 60) -> None:
    real = load_semeval(shared_data / "semeval16_restaurants_train.csv")[:count]
    store = JobStore(f"sqlite:///{data_dir / 'jobs.db'}", data_dir)
    GoldStore(store.engine).put("restaurants", [Label(e.text, e.stems) for e in real], source="import",
                                owner=OPERATOR)
    store.close()


@asynccontextmanager
async def serving(data_dir: Path, *, keys: tuple[str, ...] = (), **jobs: object) -> AsyncIterator[tuple]:
    settings = Settings(classifier=ClassifierSettings(route="cascade"),
                        server=ServerSettings(batch_timeout=0.0, api_keys=keys, max_text_chars=200),
                        jobs=JobSettings(data_dir=data_dir, enabled=False, **jobs))  # type: ignore[arg-type]
    app = create_app(settings, {"restaurants": RESTAURANTS}, FixedBackend(ScriptedProcessor(nothing_applies)))
    async with app.router.lifespan_context(app):
        learning = app.state.labels.learning
        await until(lambda: learning.slots and all(s.state != "loading" for s in learning.slots.values()))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def paths(client: httpx.AsyncClient, text: str, key: str | None = None) -> list[str]:
    body = await client.post("/classify", json={"texts": [text]}, headers=as_key(key) if key else {})
    return body.json()["results"][0]["classification_result"]["classification_paths"]


async def test_two_keys_on_one_server_never_see_or_steer_each_others_answers(tmp_path: Path, shared_data: Path):
    import_gold(tmp_path, shared_data)
    async with serving(tmp_path, keys=("key-a", "key-b")) as (_, client):
        assert SERVICE not in await paths(client, NEAR, "key-a")
        posted = await client.post("/v1/labels", json={"text": COMMENT, "paths": ["Service>General"]},
                                   headers=as_key("key-a"))
        assert posted.status_code == 200
        label_id = posted.json()["id"]
        assert SERVICE in await paths(client, NEAR, "key-a")  # A's correction answers A at once
        assert SERVICE not in await paths(client, NEAR, "key-b")  # and never B

        seen_by_b = (await client.get("/v1/labels", params={"limit": 1000}, headers=as_key("key-b"))).json()["data"]
        assert COMMENT not in [item["text"] for item in seen_by_b] and all(item["shared"] for item in seen_by_b)
        assert (await client.delete(f"/v1/labels/{label_id}", headers=as_key("key-b"))).status_code == 404
        # B labels the same text as about nothing: only B's answers change.
        emptied = await client.post("/v1/labels", json={"text": COMMENT, "paths": []}, headers=as_key("key-b"))
        assert emptied.status_code == 200 and emptied.json()["created"] is True
        assert SERVICE in await paths(client, NEAR, "key-a")
        assert await paths(client, NEAR, "key-b") == []
        # The operator's labels answer both keys and are read-only to them.
        imported = seen_by_b[0]["id"]
        refused = await client.delete(f"/v1/labels/{imported}", headers=as_key("key-a"))
        assert refused.status_code == 403 and "operator" in refused.json()["detail"]


async def test_a_label_posted_during_a_retraining_survives_a_restart(tmp_path: Path, shared_data: Path):
    import_gold(tmp_path, shared_data)
    first, second = "The waiters ignored us all evening.", "The fish was stale and cold."
    async with serving(tmp_path, retrain_after=1, retrain_interval=0.0) as (app, client):
        learning = app.state.labels.learning
        hold = threading.Event()
        blocked = asyncio.get_running_loop().run_in_executor(learning._trainer, hold.wait)  # the trainer is busy
        assert (await client.post("/v1/labels", json={"text": first, "paths": ["Service>General"]})).status_code == 200
        slot = learning.slots[("restaurants", "")]
        await until(lambda: slot.training is not None)
        await asyncio.sleep(0.5)  # the retraining took its snapshot and waits for the trainer
        assert (await client.post("/v1/labels", json={"text": second, "paths": ["Service>General"]})).status_code == 200
        hold.set()
        await blocked
        await until(lambda: slot.training is None or slot.training.done())
        await until(lambda: slot.training is None)
    async with serving(tmp_path) as (app, client):
        assert app.state.serving.gold()["restaurants"]["failed"] == []
        knowledge = app.state.serving.service.knowledge[("restaurants", "")]
        assert {first, second} <= set(knowledge.texts) and knowledge.model is not None
        assert SERVICE in await paths(client, "The fish was stale and very cold.")
        ready = (await client.get("/ready")).json()
        assert ready["gold"]["restaurants"]["failed"] == []


async def test_concurrent_posts_and_deletes_lose_nothing(tmp_path: Path, shared_data: Path):
    import_gold(tmp_path, shared_data, count=20)
    texts = [f"Comment number {n} about the waiter's manners." for n in range(12)]
    async with serving(tmp_path) as (app, client):
        posted = await asyncio.gather(*(client.post("/v1/labels", json={"text": t, "paths": ["Service>General"]})
                                        for t in texts[:8]))
        ids = [r.json()["id"] for r in posted]
        await asyncio.gather(*(client.delete(f"/v1/labels/{i}") for i in ids[:4]),
                             *(client.post("/v1/labels", json={"text": t, "paths": ["Food>Quality"]})
                               for t in texts[8:]))
        knowledge = app.state.serving.service.knowledge[("restaurants", "")]
        assert set(texts[4:]) <= set(knowledge.texts) and not set(texts[:4]) & set(knowledge.texts)
        listed = (await client.get("/v1/labels", params={"limit": 1000})).json()["data"]
        assert sorted(item["text"] for item in listed if not item["shared"]) == sorted(texts[4:])


async def test_labels_are_bounded_and_bad_input_gets_a_4xx(tmp_path: Path, shared_data: Path):
    import_gold(tmp_path, shared_data, count=20)
    async with serving(tmp_path, max_labels=2) as (_, client):
        label = {"text": "The soup was cold.", "paths": ["Food>Quality"]}
        long = await client.post("/v1/labels", json={**label, "text": "cold " * 100})
        assert long.status_code == 413 and "--max-text-chars" in long.json()["detail"]
        assert (await client.post("/v1/labels", json=label)).status_code == 200
        assert (await client.post("/v1/labels", json={**label, "text": "Rude waiter."})).status_code == 200
        assert (await client.post("/v1/labels", json=label)).status_code == 200  # a replacement adds none
        full = await client.post("/v1/labels", json={**label, "text": "A third one."})
        assert full.status_code == 409 and "delete some first" in full.json()["detail"]
        for bad in ({**label, "taxonomy": ["x"]}, {**label, "text": "cold\x00soup"}, {**label, "paths": "Food"},
                    {"paths": []}):
            answer = await client.post("/v1/labels", json=bad)
            assert answer.status_code == 422, (bad, answer.text)


@pytest.mark.parametrize("text", [COMMENT, "the FISH was stale and cold."])
async def test_an_answer_from_a_label_says_so_even_when_it_holds_no_topic(tmp_path: Path, shared_data: Path,
                                                                         text: str):
    import_gold(tmp_path, shared_data, count=20)
    async with serving(tmp_path) as (_, client):
        assert (await client.post("/v1/labels", json={"text": COMMENT, "paths": []})).status_code == 200
        body = (await client.post("/classify", json={"texts": [text, "Lovely view."]})).json()
        labelled, walked = (r["classification_result"] for r in body["results"])
        assert labelled == {"classification_paths": [], "node_results": {}, "source": "gold"}
        assert walked["source"] in ("learned", "llm")  # walked: who decided its topics


def ordinary(prompt, schema):
    """The scripted LLM: every comment ordinary; details, where asked, one recommendation."""
    if "options" in schema:
        return {"complaint": 0.9, "request": 0.1}
    if "recommendations" in schema.get("properties", {}):
        return {"recommendations": [RECOMMENDATION]}
    return nothing_applies(prompt, schema)


async def test_imported_flag_labels_decide_a_near_duplicate_before_the_llm(tmp_path: Path, shared_data: Path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path)
    rows = load_suggestions(shared_data / "semeval19_suggestions_train.csv")[:80]
    labels = [l for e in rows for l in from_flags(e.text, e.flags)]
    labels.append(FlagLabel("Please add a dark mode to the editor.", "recommendations", True))
    FlagStore(store.engine).put(labels, source="import", owner=OPERATOR)
    store.close()
    settings = Settings(server=ServerSettings(batch_timeout=0.0), jobs=JobSettings(data_dir=tmp_path, enabled=False))
    proc = ScriptedProcessor(ordinary)
    app = create_app(settings, {"restaurants": RESTAURANTS}, FixedBackend(proc))
    async with app.router.lifespan_context(app):
        await until(lambda: OPERATOR in app.state.serving.service.flag_knowledge)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = await client.post("/classify", json={"texts": ["Please add a dark mode to the editor!"],
                                                        "capabilities": ["recommendations"]})
    [result] = body.json()["results"]
    assert result["recommendations"]["source"] == "gold" and result["recommendations"]["has_recommendations"]
    assert result["recommendations"]["recommendations"][0]["paraphrased_recommendation"]  # details from the LLM
    assert not any("options" in call.schema for call in proc.calls), "the label decided: no LLM decision"
