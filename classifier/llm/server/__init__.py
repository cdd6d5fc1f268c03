"""The server backend: the processor seam over OpenAI-compatible servers (`vllm serve`).

- `processor`: `VLLMServerProcessor`, one chat completion per prompt, retried per item;
- `replicas`: the servers, which one gets a request, which are set aside and probed;
- `requests`: the request bodies (schema, choice, priority);
- `context`: comments too long for the context window, shortened with the server's tokenizer.
"""
from ..urls import normalise_url, redacted
from .processor import BACKEND, VLLMServerProcessor
from .requests import chat_request, choice_request

__all__ = ["BACKEND", "VLLMServerProcessor", "chat_request", "choice_request", "normalise_url", "redacted"]
