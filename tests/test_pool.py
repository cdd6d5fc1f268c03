"""ProcessorPool without an engine: backend choice, errors, GPU report without NVML."""
from __future__ import annotations

import pytest

from classifier.llm import pool

from classifier.llm.errors import BackendUnavailable, ConfigurationError
from classifier.llm.pool import ProcessorPool
from classifier.llm.server import VLLMServerProcessor
from classifier.settings import EngineSettings


def test_unknown_backend_names_the_valid_values() -> None:
    with pytest.raises(ConfigurationError, match="'vllm'.*local, vllm-server"):
        ProcessorPool(EngineSettings(backend="vllm"))


def test_processor_before_start_says_what_to_do() -> None:
    pool = ProcessorPool(EngineSettings())
    with pytest.raises(RuntimeError, match="start"):
        pool.processor


def test_gpu_memory_is_empty_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    def no_driver() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    pool._nvml.cache_clear()
    assert ProcessorPool(EngineSettings()).gpu_memory() == []
    pool._nvml.cache_clear()


def test_nvml_is_initialised_once_not_per_health_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    inits: list[int] = []
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: inits.append(1))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 0)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: pytest.fail("NVML shut down after a call"))
    pool._nvml.cache_clear()
    try:
        for _ in range(3):
            assert ProcessorPool.gpu_memory() == []
        assert inits == [1]
    finally:
        pool._nvml.cache_clear()


async def test_server_backend_that_cannot_be_reached_fails_start_and_leaves_no_processor() -> None:
    settings = EngineSettings(
        backend="vllm-server", server_urls=("http://127.0.0.1:9/v1",), request_timeout=2
    )
    pool = ProcessorPool(settings)
    with pytest.raises(BackendUnavailable):
        await pool.start()
    with pytest.raises(RuntimeError):
        pool.processor
    await pool.close()  # nothing to close: a no-op


async def test_server_backend_is_the_server_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_check(self: VLLMServerProcessor) -> None:
        return None

    monkeypatch.setattr(VLLMServerProcessor, "start", no_check)
    pool = ProcessorPool(EngineSettings(backend="vllm-server"))
    await pool.start()
    assert isinstance(pool.processor, VLLMServerProcessor)
    assert pool.processor.backend == "vllm-server"
    await pool.close()
    with pytest.raises(RuntimeError):
        pool.processor
