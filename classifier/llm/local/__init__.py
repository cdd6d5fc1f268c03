"""The local backend: vLLM engines in worker processes, one per GPU (or one on vLLM's CPU build).

`processor` is the seam's side (`LocalVLLMProcessor`), `worker` the parent's side of each
engine process (spawn, supervision, replacement), `engine` what runs inside it (the engine
stepped by hand: continuous batching), `admission` which of its waiting requests join the
batch (small requests first), `messages` what crosses their pipe and `config` how an engine
is configured.
"""
from .config import llm_args, worker_env
from .processor import MAX_RESTARTS, LocalVLLMProcessor

__all__ = ["LocalVLLMProcessor", "MAX_RESTARTS", "llm_args", "worker_env"]
