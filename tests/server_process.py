"""`classifier_server.py` as a real process on a free 127.0.0.1 port, for tests and benchmarks.

    with ServerProcess(["--backend", "vllm-server", ...]) as server:
        httpx.get(f"{server.url}/health")

`start()` returns once /health answers (or raises with the log's tail); `stop()` sends
SIGTERM and returns the exit status, killing the process only if it outlives `grace`.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from .engine_server import free_port

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    def __init__(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, start_timeout: float = 300.0,
                 grace: float = 60.0, ready: str | None = "/health") -> None:
        """`ready`: the path that answers 200 once the server is up; None for --jobs-only
        (no HTTP), which is up once its log says it works jobs."""
        self.port = free_port()
        # Jobs' files and database in a folder of the test's own, unless the test names one.
        self.own_data = None if "--data-dir" in args else tempfile.mkdtemp(prefix="classifier-jobs-")
        data = ["--data-dir", self.own_data] if self.own_data else []
        self.command = [sys.executable, str(ROOT / "classifier_server.py"), "--host", "127.0.0.1",
                        "--port", str(self.port), *data, *args]
        self.env = {**os.environ, **(env or {})}
        self.start_timeout, self.grace, self.ready = start_timeout, grace, ready
        self.log_path = Path(tempfile.mkstemp(prefix=f"classifier-server-{self.port}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self) -> "ServerProcess":
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + self.start_timeout
        while self.process.poll() is None:
            if self._is_up():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"classifier_server did not answer within {self.start_timeout:g} s:\n{self.log()[-3000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"classifier_server exited with {self.process.returncode}:\n{self.log()[-3000:]}")

    def _is_up(self) -> bool:
        if self.ready is None:
            return "classifier: working jobs" in self.log()
        try:
            return httpx.get(f"{self.url}{self.ready}", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> int | None:
        """SIGTERM, wait up to `grace`, then SIGKILL; the exit status (None if never started).
        A data folder the helper made for the server goes with it."""
        if self.process is None:
            return None
        try:
            return self._stop()
        finally:
            if self.own_data:
                shutil.rmtree(self.own_data, ignore_errors=True)

    def _stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
