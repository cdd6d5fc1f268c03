"""A real vLLM OpenAI-compatible server as a subprocess, for tests and benchmarks.

    with EngineServer(model_dir) as server:
        ... server.url ...            # http://127.0.0.1:<free port>/v1

The server runs in its own process group (front end, engine core and workers alike), so
`stop()` (SIGTERM, then SIGKILL after a grace period) and `kill()` (SIGKILL, a crash)
leave no process behind. `start()` after either brings it back on the same port.
The CPU settings come from ENGINE-NOTES: a set KV-cache size, every core for OpenMP,
eager mode (faster start) and block size 32 (more prefix-cache reuse).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_members(pgid: int) -> list[int]:
    """Pids of the group's live processes (zombies do not count: they are gone but for
    their exit status, which may wait on an init that does not reap)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _shared_memory(pids: list[int]) -> set[Path]:
    """/dev/shm files the processes have mapped: vLLM's message queues (hundreds of MB),
    which a killed server never unlinks."""
    found = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            path = line.split(maxsplit=5)[-1].removesuffix(" (deleted)")
            if path.startswith("/dev/shm/"):
                found.add(Path(path))
    return found


class EngineServer:
    """`python -m vllm.entrypoints.openai.api_server` on 127.0.0.1, started and stopped by the caller."""

    def __init__(
        self,
        model: str | Path,
        *,
        port: int | None = None,
        max_model_len: int = 2048,
        block_size: int = 32,
        kv_cache_gib: float = 1.0,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start_timeout: float = 300.0,
        stop_grace: float = 30.0,
        log_path: Path | None = None,
    ) -> None:
        self.model = str(model)
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.log_path = log_path or Path(tempfile.mkstemp(prefix=f"vllm-server-{self.port}-", suffix=".log")[1])
        self.command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--enforce-eager",
            "--block-size", str(block_size),
            "--max-model-len", str(max_model_len),
            "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',  # as the README starts it
            *extra_args,
        ]  # fmt: skip
        self.env = {
            "VLLM_CPU_KVCACHE_SPACE": f"{kv_cache_gib:g}",
            "VLLM_CPU_OMP_THREADS_BIND": f"0-{(os.cpu_count() or 1) - 1}",
            **os.environ,
            **(env or {}),
        }
        self.started_in: float | None = None  # seconds the last start took to answer /v1/models
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> "EngineServer":
        """Start the server and return once GET /v1/models answers."""
        if self._process is not None:
            raise RuntimeError(f"the server on port {self.port} is already started")
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        try:
            self._wait_ready(began + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def _wait_ready(self, deadline: float) -> None:
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"vLLM server exited with status {self._process.returncode} before it "
                    f"answered; log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"vLLM server did not answer {self.url}/models within "
                    f"{self.start_timeout:g} s; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM the whole group; SIGKILL what is left after the grace period."""
        self._end(signal.SIGTERM, self.stop_grace)

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, as a client sees it."""
        self._end(signal.SIGKILL, 0.0)

    def _end(self, sig: signal.Signals, grace: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        pgid = process.pid  # start_new_session: the leader's pid is the group id
        shared = _shared_memory(_group_members(pgid))
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while (process.poll() is None or _group_members(pgid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.poll() is None or _group_members(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        deadline = time.monotonic() + 10
        while _group_members(pgid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes of group {pgid} survived SIGKILL")
            time.sleep(0.1)
        for path in shared:  # the group is gone: nothing else maps them
            path.unlink(missing_ok=True)

    def __enter__(self) -> "EngineServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
