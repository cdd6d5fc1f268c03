"""The learning loop end to end, on a real slice of labelled restaurant sentences, the real
embedding model and learned classifier, and the HTTP face (the LLM is scripted): a
correction changes the next answer for a near-duplicate comment, at once; labels are
idempotent per text, listed, deleted, and refused with the bad path named."""
from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from classifier.api import FixedBackend, create_app
from classifier.eval.gold import load_semeval
from classifier.gold import OPERATOR
from classifier.gold.labels import Label
from classifier.gold.store import GoldStore
from classifier.gold.training import model_path
from classifier.jobs.store import JobStore
from classifier.settings import ClassifierSettings, JobSettings, ServerSettings, Settings
from classifier.taxonomy import load_taxonomy
from tests.scripted import ScriptedProcessor

from .conftest import ROOT

RESTAURANTS = load_taxonomy(ROOT / "configs" / "restaurants.json")
COMMENT = "The fish was stale and cold."
NEAR = "The fish was stale and very cold."


def nothing_applies(prompt, schema):
    """The scripted LLM: no topic applies (so any topic found comes from the gold)."""
    return {"topics": ["none of these"]}


async def until(condition, seconds: float = 120.0) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the condition never held")


async def test_a_correction_changes_the_next_answer_for_a_near_duplicate(tmp_path: Path, shared_data: Path):
    real = load_semeval(shared_data / "semeval16_restaurants_train.csv")[:120]
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path)
    GoldStore(store.engine).put("restaurants", [Label(e.text, e.stems) for e in real], source="import", owner="cli")
    store.close()
    settings = Settings(classifier=ClassifierSettings(route="cascade"),
                        server=ServerSettings(batch_timeout=0.0), jobs=JobSettings(data_dir=tmp_path, enabled=False))
    app = create_app(settings, {"restaurants": RESTAURANTS}, FixedBackend(ScriptedProcessor(nothing_applies)))
    async with app.router.lifespan_context(app):
        knowledge = app.state.serving.service.knowledge
        await until(lambda: ("restaurants", OPERATOR) in knowledge)
        assert knowledge[("restaurants", OPERATOR)].model is not None
        assert model_path(tmp_path / "learned", RESTAURANTS).exists()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def answer(text: str) -> dict:
                body = (await client.post("/classify", json={"texts": [text]})).json()
                return body["results"][0]["classification_result"]

            before = await answer(NEAR)
            assert "Restaurant reviews>Service>General" not in before["classification_paths"]

            correction = {"text": COMMENT, "paths": ["Service>General"], "taxonomy": "restaurants"}
            first = await client.post("/v1/labels", json=correction)
            assert first.status_code == 200 and first.json()["created"] is True
            again = await client.post("/v1/labels", json=correction)
            assert again.json()["created"] is False and again.json()["id"] == first.json()["id"]

            after = await answer(NEAR)
            assert after["classification_paths"] == ["Restaurant reviews>Service", "Restaurant reviews>Service>General"]
            assert {node["source"] for node in after["node_results"].values()} == {"gold"}

            listed = (await client.get("/v1/labels", params={"taxonomy": "restaurants", "limit": 1000})).json()
            assert len(listed["data"]) == len({e.text.casefold() for e in real} | {COMMENT.casefold()})
            mine = next(item for item in listed["data"] if item["text"] == COMMENT)
            assert mine["paths"] == ["Service>General"] and mine["source"] == "correction" and not mine["shared"]

            deleted = await client.delete(f"/v1/labels/{mine['id']}", params={"taxonomy": "restaurants"})
            assert deleted.json()["deleted"] is True
            assert (await client.delete(f"/v1/labels/{mine['id']}", params={"taxonomy": "restaurants"})).status_code == 404
            assert COMMENT not in knowledge[("restaurants", "")].texts  # gone from retrieval at once
            assert (await answer(NEAR)) == before

            bad = await client.post("/v1/labels", json={**correction, "paths": ["Food>Smell"]})
            assert bad.status_code == 422 and "Food>Smell" in bad.json()["detail"]
            unknown = await client.post("/v1/labels", json={**correction, "taxonomy": "hotels"})
            assert unknown.status_code == 404 and "hotels" in unknown.json()["detail"]
