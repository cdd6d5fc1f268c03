"""How an engine worker is configured: its environment and vLLM's engine arguments."""
from __future__ import annotations

import os
from typing import Any, Sequence

from ...settings import EngineSettings


def _cpu_bind() -> str:
    """All cores this process may use, in VLLM_CPU_OMP_THREADS_BIND's syntax."""
    cores = sorted(os.sched_getaffinity(0))  # Linux, as vLLM's CPU build is
    if cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


def worker_env(gpu: int | None, visible_devices: Sequence[str] | None = None) -> dict[str, str]:
    """Environment a worker sets before importing vLLM.

    The engine runs inside the worker (no extra engine process: faster start, and
    vLLM's thread pinning stays in the worker). A GPU worker sees only its GPU: `gpu`
    indexes the devices the operator's CUDA_VISIBLE_DEVICES left visible (`visible_devices`),
    in CUDA's order, as torch numbers them. The CPU engine gets every core (vLLM's default
    keeps one idle, ~25% slower).
    """
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    if gpu is None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = _cpu_bind()
    else:
        env["CUDA_VISIBLE_DEVICES"] = visible_devices[gpu] if visible_devices is not None else str(gpu)
    return env


def llm_args(settings: EngineSettings, model: str, gpu: int | None) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM`: the one place the engine's settings are chosen
    (the benchmark builds its plain baseline from them too)."""
    args: dict[str, Any] = dict(
        model=model,
        max_model_len=settings.max_length,
        seed=settings.seed,
        enforce_eager=settings.enforce_eager if settings.enforce_eager is not None else gpu is None,
        enable_prefix_caching=True,
        # No free whitespace in JSON (an engine-wide setting in vLLM): a small model cannot
        # fill its token budget with newlines between the fields.
        structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
    )
    if settings.block_size:
        args["block_size"] = settings.block_size
    if gpu is None:
        args["kv_cache_memory_bytes"] = int(settings.kv_cache_gib * 2**30)
    else:
        args["gpu_memory_utilization"] = settings.gpu_memory
    return args
