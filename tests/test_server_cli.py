"""classifier_server.py as a real process, against the scriptable fault server (no engine):
start-up line, flags and their environment twins, clean refusals, SIGTERM exits 0."""
from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest

from .fault_server import FaultServer
from .server_process import ROOT, ServerProcess


@pytest.fixture(scope="module")
def fake_llm():
    with FaultServer(models=["m"]) as server:
        yield server


def run_server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "classifier_server.py"), *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)


def test_serves_prints_where_and_exits_0_on_sigterm(fake_llm, tmp_path):
    extra = tmp_path / "shop.json"
    extra.write_text('{"name": "Shop", "children": [{"name": "Prices"}]}')
    server = ServerProcess(["--taxonomy", f"shop={extra}", "--api-key", "k"],
                           env={"CLASSIFIER_BACKEND": "vllm-server", "CLASSIFIER_VLLM_SERVER_URL": fake_llm.url})
    with server:
        health = httpx.get(f"{server.url}/health").json()
        assert health["backend"] == "vllm-server" and health["model"] == "m" and health["status"] == "healthy"
        assert httpx.get(f"{server.url}/capabilities").status_code == 401
        taxonomies = httpx.get(f"{server.url}/capabilities", headers={"Authorization": "Bearer k"}).json()["taxonomies"]
        assert [t["name"] for t in taxonomies] == ["topics", "shop"]
        assert server.stop() == 0
    log = server.log()
    assert (f"classifier: listening on http://127.0.0.1:{server.port} - backend vllm-server ({fake_llm.url}), "
            "model m") in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--config", "{bad}"], "node 'R' has duplicate child names ['A']"),
        (["--taxonomy", "x=/no/such.json"], "taxonomy file /no/such.json does not exist"),
        (["--llm", "other"], "does not serve model 'other'; it serves: m"),
        (["--vllm-server-url", "http://127.0.0.1:9/v1"], "cannot reach the server at http://127.0.0.1:9/v1"),
        (["--max-texts", "50", "--max-queued-texts", "10"], "exceeds the queue bound"),
        (["--api-key", ""], "an API key is empty"),
        (["--webhook-secret", "whsec_not base64!"], "a whsec_ secret must be base64"),
        (["--host", "0.0.0.0"], "no --api-key is set: anyone who can reach it could classify and read every job"),
        (["--route", "distilled"], "distilled is a route for files: batch_classify.py --route distilled"),
    ],
)
def test_a_bad_start_stops_with_one_line_and_no_traceback(fake_llm, tmp_path, args, says):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "R", "children": [{"name": "A"}, {"name": "A"}]}')
    args = [str(bad) if a == "{bad}" else a for a in args]
    if "--vllm-server-url" not in args:
        args += ["--vllm-server-url", fake_llm.url]
    done = run_server("--backend", "vllm-server", "--port", "0", *args)
    assert done.returncode in (1, 2) and says in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_is_named_before_any_engine_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_server("--port", str(port))  # backend local: would start an engine if it got that far
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr and "--port / CLASSIFIER_PORT" in done.stderr


def test_the_upstream_api_key_comes_from_its_flag_or_environment_twin():
    with FaultServer(models=["m"], api_key="up-key") as keyed:
        refused = run_server("--backend", "vllm-server", "--port", "0", "--vllm-server-url", keyed.url)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert f"the server at {keyed.url} refused the API key" in refused.stderr and "--vllm-api-key" in refused.stderr
        server = ServerProcess([], env={"CLASSIFIER_BACKEND": "vllm-server", "CLASSIFIER_VLLM_SERVER_URL": keyed.url,
                                        "CLASSIFIER_VLLM_API_KEY": "up-key"})  # fmt: skip
        with server:
            assert httpx.get(f"{server.url}/health").json()["status"] == "healthy"
            assert server.stop() == 0
