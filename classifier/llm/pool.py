"""ProcessorPool: picks the backend named in the settings, starts it (and its fallbacks) and owns it.

The rest of the service only sees `pool.processor` (a `Processor`); which backend
answers, and its life cycle, stay here. Backends are imported when chosen, so a
server-only deployment never imports vLLM's Python API, and a local one never needs
the OpenAI client.
"""
from __future__ import annotations

import asyncio
import functools
from dataclasses import replace
from typing import Any, Protocol

from ..settings import EngineSettings
from .base import Processor
from .chain import FallbackChain
from .errors import ConfigurationError

BACKENDS = ("local", "vllm-server")


class _Backend(Processor, Protocol):
    """What the pool needs beyond the seam: both backends start the same way."""

    async def start(self) -> None: ...


class ProcessorPool:
    """Builds the processor from `EngineSettings`; `start` before use, `close` after."""

    def __init__(self, settings: EngineSettings) -> None:
        if settings.backend not in BACKENDS:
            raise ConfigurationError(
                f"unknown backend {settings.backend!r}; valid values: {', '.join(BACKENDS)}"
            )
        if settings.fallback_local and settings.backend == "local":
            raise ConfigurationError("--fallback local backs up a server backend; here the local engine is the primary")
        self.settings = settings
        self._processor: Processor | None = None

    @property
    def processor(self) -> Processor:
        if self._processor is None:
            raise RuntimeError("ProcessorPool.start() has not been awaited")
        return self._processor

    async def start(self) -> None:
        """Build and start the backend (engine start, or the servers' model check), and each
        fallback after it: a fallback that cannot start fails the start as the primary does."""
        if self._processor is not None:
            return
        links: list[Processor] = []
        try:
            for settings in self.links():
                links.append(await _started(settings))
        except BaseException:
            await asyncio.gather(*(link.close() for link in links))
            raise
        self._processor = links[0] if len(links) == 1 else FallbackChain(links)

    def links(self) -> list[EngineSettings]:
        """The primary backend's settings, then each fallback's, in the order they are tried."""
        s = self.settings
        links = [s]
        if s.fallback_server_urls:
            links.append(replace(s, backend="vllm-server", server_urls=s.fallback_server_urls, llm=s.fallback_llm))
        if s.fallback_local:
            links.append(replace(s, backend="local", llm=s.fallback_llm))
        return links

    @property
    def gpu_count(self) -> int:
        """GPUs the engines use (the --gpu-list of the local backend, or of a local fallback)."""
        s = self.settings
        return len(s.gpu_list) if s.backend == "local" or s.fallback_local else 0

    async def close(self) -> None:
        if self._processor is not None:
            processor, self._processor = self._processor, None
            await processor.close()

    @staticmethod
    def gpu_memory() -> list[dict[str, Any]]:
        """Per GPU: index, name, used and total MiB (NVML); [] without a GPU or NVML.

        Every GPU the driver sees, in NVML's order, not only the pool's: /health shows the
        machine. Which GPUs the engines use is `gpu_count` and --gpu-list, in CUDA's order.
        """
        pynvml = _nvml()
        if pynvml is None:
            return []
        try:
            gpus = []
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                name = pynvml.nvmlDeviceGetName(handle)
                gpus.append(
                    {
                        "index": index,
                        "name": name.decode() if isinstance(name, bytes) else name,
                        "used_mib": memory.used // 2**20,
                        "total_mib": memory.total // 2**20,
                    }
                )
            return gpus
        except Exception:
            return []


async def _started(settings: EngineSettings) -> Processor:
    """The backend `settings` name, started; whatever a half start opened is released."""
    processor: _Backend
    if settings.backend == "local":
        from .local import LocalVLLMProcessor

        processor = LocalVLLMProcessor(settings)
    else:
        from .server import VLLMServerProcessor

        processor = VLLMServerProcessor(settings)
    try:
        await processor.start()
    except BaseException:
        await processor.close()
        raise
    return processor


@functools.cache
def _nvml() -> Any:
    """NVML, initialised once for the process (not per /health call); None without it."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no package, no driver, no GPU: all mean "nothing to report"
        return None
    return pynvml
