"""Fuzzing the two ways text comes in, with hypothesis: `POST /classify` bodies (random
bytes, random JSON, deep nesting, huge lines) never get a 500, and the upload parser turns
any file into requests or a `BadInput` listing its problems, never another exception."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from classifier.api import create_app
from classifier.jobs.inputs import BadInput, read_requests
from tests.scripted import ScriptedProcessor, oracle
from tests.test_api import FixedBackend, settings as app_settings, taxonomies
from tests.test_service import GOLD, capability_answers

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
BODIES = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=2000).map(str.encode),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"texts": st.lists(st.text(max_size=50), max_size=5)},
                          optional={"capabilities": st.lists(st.text(max_size=20), max_size=3),
                                    "taxonomy": st.text(max_size=20), "config_path": st.text(max_size=30),
                                    "project_name": st.text(max_size=20)}).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5_000).map(lambda n: json.dumps({"texts": ["x" * n * 100]}).encode()),
)


@pytest.fixture(scope="module")
def client():
    app = create_app(app_settings(max_texts=5, max_text_chars=1000), taxonomies(),
                     FixedBackend(ScriptedProcessor(oracle(GOLD, capability_answers))))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_classify_never_answers_500(client: TestClient, body: bytes) -> None:
    response = client.post("/classify", content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    assert "detail" in response.json() or "results" in response.json()


FILE_LINES = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.text(max_size=200),
    st.fixed_dictionaries({"custom_id": st.text(max_size=10), "method": st.just("POST"), "url": st.just("/v1/classify"),
                           "body": JSON_VALUES}).map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.integers(1, 100_000).map(lambda depth: "[" * depth + "]" * depth),
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(FILE_LINES, max_size=8), raw=st.binary(max_size=500), name=st.sampled_from(
    ["in.jsonl", "in.csv", "upload", "in.txt"]), as_bytes=st.booleans())
def test_the_upload_parser_answers_requests_or_bad_input(lines: list[str], raw: bytes, name: str,
                                                        as_bytes: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(raw if as_bytes else "\n".join(lines).encode())
        try:
            requests = read_requests(path, name, {}, lambda body: None)
        except BadInput as exc:
            assert exc.errors and all(isinstance(e["message"], str) for e in exc.errors)
        else:
            assert requests and all(isinstance(r.body, dict) for r in requests)
