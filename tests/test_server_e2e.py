"""classifier_server.py as users start it, with no flags: the embedded default model on
vLLM's CPU engine, in a real process on a free 127.0.0.1 port. One request with several
capabilities is checked field by field; a SIGTERM while a request is in flight lets that
request finish, then the process exits 0 and leaves no engine worker behind.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from classifier.taxonomy import PATH_SEPARATOR, load_taxonomy

from .server_process import ROOT, ServerProcess
from .models import TEST_LLM

pytestmark = pytest.mark.engine

TEXTS = [
    "The trainer rushed through the last module and the slides were hard to read.",
    "Lunch was cold again, please order from a different caterer next time.",
]
CAPABILITIES = ["classification", "recommendations", "alerts", "stem_polarity"]
QUALIFIERS = {"add_or_increase", "reduce_or_remove", "introduce_or_start", "eliminate_or_stop", "modify_or_improve",
              "maintain_or_continue", "unspecified_or_general"}
ALERT_TYPES = {"discrimination", "sexual_harassment", "workplace_violence", "safety_concern", "ethical_violation",
               "hostile_environment", "retaliation", "bullying", "substance_abuse", "mental_health_crisis",
               "data_breach", "fraud", "other_serious_concern"}
SEVERITIES = {"low", "moderate", "high", "critical"}
POLARITIES = {"Positive", "Negative", "Neutral", "Mixed"}


def _children(pid: int) -> set[int]:
    """Every descendant process of `pid` (the engine worker and whatever it spawned)."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        parents, frontier = frontier, set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) in parents and fields[0] != "Z":
                frontier.add(int(stat.parent.name))
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def check_result(result: dict[str, Any], text: str) -> set[str]:
    """Every field of one result against the wire contract; returns the capability keys present."""
    tree = load_taxonomy(ROOT / "configs" / "topics.json")
    root = tree.root.name
    assert result["text"] == text
    assert set(result) <= {"text", "classification_result", "recommendations", "alerts", "stem_polarity", "error",
                           "truncated"}
    assert "error" not in result or isinstance(result["error"], str) and result["error"]

    classification = result["classification_result"]
    assert set(classification) == {"classification_paths", "node_results"}
    paths = classification["classification_paths"]
    assert all(isinstance(p, str) and p.startswith(root + PATH_SEPARATOR) for p in paths), paths
    for k, path in enumerate(paths):
        parts = tuple(path.split(PATH_SEPARATOR)[1:])
        assert parts in tree, f"{path} is not a node of the taxonomy"
        if len(parts) > 1:
            assert PATH_SEPARATOR.join((root, *parts[:-1])) in paths[:k], f"{path} comes before its parent"
    assert isinstance(classification["node_results"], dict)

    if "recommendations" in result:
        recs = result["recommendations"]
        assert set(recs) == {"has_recommendations", "probability", "recommendations", "source"}
        assert recs["source"] == "llm"  # this server has no flag labels
        assert recs["has_recommendations"] is bool(recs["recommendations"]) and 0 <= recs["probability"] <= 1
        for rec in recs["recommendations"]:
            assert set(rec) == {"excerpt", "reasoning", "paraphrased_recommendation", "qualifier", "probability"}
            assert rec["qualifier"] in QUALIFIERS and all(isinstance(rec[k], str) for k in ("excerpt", "reasoning"))
    if "alerts" in result:
        alerts = result["alerts"]
        assert set(alerts) == {"has_alerts", "probability", "alerts", "source"} and alerts["source"] == "llm"
        assert alerts["has_alerts"] is bool(alerts["alerts"])
        assert 0 <= alerts["probability"] <= 1
        for alert in alerts["alerts"]:
            assert set(alert) == {"excerpt", "reasoning", "alert_type", "severity", "probability"}
            assert alert["alert_type"] in ALERT_TYPES and alert["severity"] in SEVERITIES
    if "stem_polarity" in result:
        stems = {PATH_SEPARATOR.join(p.split(PATH_SEPARATOR)[1:]) for p in paths}
        for stem, polarity in result["stem_polarity"].items():
            assert stem in stems and tree.is_complete_stem(tuple(stem.split(PATH_SEPARATOR))), stem
            assert set(polarity) == {"polarity", "confidence", "probability", "reasoning", "excerpt", "source"}
            assert polarity["source"] == "llm"  # this server has no labels
            assert polarity["polarity"] in POLARITIES and polarity["confidence"] in range(1, 6)
            # One call judged all the text's stems; the engine's log-probabilities give each its probability.
            assert 0 < polarity["probability"] <= 1 and polarity["reasoning"] == polarity["excerpt"] == ""
    return set(result) & {"recommendations", "alerts", "stem_polarity"}


def until_warm(url: str, timeout: float = 300) -> dict[str, Any]:
    """The warm-up's status once it is done."""
    deadline = time.monotonic() + timeout
    while not (warm := httpx.get(f"{url}/health").json()["detail"]["warm_up"])["done"]:
        assert time.monotonic() < deadline, warm
        time.sleep(0.5)
    return warm


def test_default_server_classifies_with_several_capabilities_and_drains_on_sigterm():
    began = time.monotonic()
    # One path per node keeps the stem count, and so the test's time, independent of how
    # many topics the small model picks; the default walk is covered by the unit tests. No
    # threshold: the small model is rarely sure, and this test needs topics to walk on.
    server = ServerProcess(["--llm", TEST_LLM, "--max-paths", "1", "--min-probability", "0"], start_timeout=600,
                           grace=120)
    with server:
        started = time.monotonic() - began
        health = httpx.get(f"{server.url}/health").json()
        assert (health["status"], health["processor_loaded"], health["backend"], health["model"]) == (
            "healthy", True, "local", "SmolLM2-135M-Instruct")
        assert health["gpu_count"] <= len(health["gpus"]) and health["default_config"].endswith("configs/topics.json")
        assert httpx.get(f"{server.url}/ready").json()["status"] == "ready"
        # The warm-up asked every fixed prompt once: a comment after it computes little more than its own tokens.
        warm = until_warm(server.url)
        assert warm["prompts"] > 0 and warm["asked"] == warm["prompts"] and warm["failed"] == 0, warm
        before = httpx.get(f"{server.url}/stats").json()["llm"]
        assert httpx.post(f"{server.url}/classify", json={"texts": TEXTS[:1]}, timeout=300).status_code == 200
        after = httpx.get(f"{server.url}/stats").json()["llm"]
        cached = after["cached_prompt_tokens"] - before["cached_prompt_tokens"]
        assert cached >= 0.6 * (after["prompt_tokens"] - before["prompt_tokens"]), (before, after)
        response = httpx.post(f"{server.url}/classify", json={"texts": TEXTS, "capabilities": CAPABILITIES},
                              timeout=300)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"results", "processing_time", "batch_info", "config_used"}
        assert body["batch_info"] == {"text_count": 2, "capabilities_executed": CAPABILITIES}
        assert body["config_used"] == "topics" and body["processing_time"] > 0
        assert len(body["results"]) == 2
        present = set().union(*(check_result(r, t) for r, t in zip(body["results"], TEXTS)))
        assert present == {"recommendations", "alerts", "stem_polarity"}, body["results"]
        assert any(r["classification_result"]["classification_paths"] for r in body["results"]), body["results"]
        stats = httpx.get(f"{server.url}/stats").json()
        assert stats["texts"] == 3 and stats["llm"]["llm_calls"] > 0 and stats["llm"]["prompt_tokens"] > 0

        workers = _children(server.process.pid)
        assert workers, "the local engine runs in a worker process"
        in_flight: dict[str, Any] = {}
        request = threading.Thread(target=lambda: in_flight.update(
            response=httpx.post(f"{server.url}/classify", json={"texts": TEXTS[:1]}, timeout=300)))
        request.start()
        time.sleep(1.0)  # the request is queued or running
        stop_began = time.monotonic()
        assert server.stop() == 0, server.log()[-3000:]
        request.join()
        assert in_flight["response"].status_code == 200, "the request in flight at SIGTERM was answered"
        assert in_flight["response"].json()["results"][0]["text"] == TEXTS[0]
        # multiprocessing's resource tracker (a child too) exits once it reads EOF from its
        # pipe, a moment after the server: give it that moment, not more.
        deadline = time.monotonic() + 10
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(workers), "no engine worker outlives the server"
    log = server.log()
    assert "classifier: listening on http://127.0.0.1:" in log
    # The CPU engine here; one engine per GPU on a GPU host.
    assert "backend local (" in log and "), model SmolLM2-135M-Instruct" in log
    print(f"server up in {started:.1f} s; stopped {time.monotonic() - stop_began:.1f} s after SIGTERM")
