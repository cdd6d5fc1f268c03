"""The server's resident memory while a big file goes up to /v1/files and comes back down:
uploads are copied to disk a piece at a time and downloads streamed from it, so memory
should barely move whatever the file's size. Prints the server's RSS before, its peak
during the upload and the download (sampled every 50 ms), and the growth.

    .venv/bin/python -m bench.bench_upload_memory                  # 1,000,000 JSONL lines
    .venv/bin/python -m bench.bench_upload_memory --lines 200000
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import click
import httpx
import psutil

from tests.fault_server import FaultServer, schema_answer
from tests.server_process import ServerProcess

LINE = '{"custom_id": "c%d", "method": "POST", "url": "/v1/classify", "body": {"texts": ["comment number %d"]}}\n'


class PeakRss:
    """Samples a process's (and its children's) resident memory in a thread; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in [self.process, *self.process.children(recursive=True)])

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.05)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@click.command()
@click.option("--lines", default=1_000_000, help="JSONL lines in the uploaded file.")
def main(lines: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "big.jsonl"
        with source.open("w") as handle:
            for k in range(lines):
                handle.write(LINE % (k, k))
        size = source.stat().st_size
        with FaultServer(models=["m"], answer=schema_answer) as llm, ServerProcess([
            "--backend", "vllm-server", "--vllm-server-url", llm.url, "--data-dir", str(Path(folder) / "data"),
            "--no-jobs",
        ]) as server:  # fmt: skip
            sampler = PeakRss(server.process.pid)
            before = sampler.rss()
            with sampler, httpx.Client(base_url=server.url, timeout=600) as http:
                with source.open("rb") as handle:
                    uploaded = http.post("/v1/files", files={"file": ("big.jsonl", handle)}, data={"purpose": "batch"})
                uploaded.raise_for_status()
                received = 0
                with http.stream("GET", f"/v1/files/{uploaded.json()['id']}/content") as response:
                    for piece in response.iter_bytes():
                        received += len(piece)
            assert received == size, (received, size)
    mib = 2**20
    print(f"file: {lines} lines, {size / mib:.0f} MiB up and down")
    print(f"server RSS: before {before / mib:.0f} MiB, peak {sampler.peak / mib:.0f} MiB, "
          f"growth {(sampler.peak - before) / mib:.0f} MiB")


if __name__ == "__main__":
    main()
