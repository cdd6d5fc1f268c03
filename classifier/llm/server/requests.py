"""The bodies of the server backend's requests: one chat completion per prompt."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ..base import JSONSchema, Prompt
from ..probabilities import TOP_LOGPROBS

Parse = Callable[[Any], dict[str, Any]]  # a response's first choice -> the item's value
# vLLM's per-request priority under `--scheduling-policy priority`: lower runs earlier, 0 is
# everyone else's. A server started without that policy refuses any other value (HTTP 400).
URGENT = -1


def chat_request(
    model: str,
    prompt: Prompt,
    schema: JSONSchema,
    *,
    max_tokens: int,
    temperature: float,
    seed: int,
    priority: int = 0,
) -> dict[str, Any]:
    """Keyword arguments of `chat.completions.create` for one prompt under a schema.

    Whitespace inside the JSON is the server's setting: start vLLM with
    `--structured-outputs-config '{"backend": "xgrammar", "disable_any_whitespace": true}'` (see the README)."""
    request: dict[str, Any] = {
        "model": model,
        "messages": prompt.messages(),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema},
        },
        "temperature": temperature,
        "seed": seed,
        "max_tokens": max_tokens,
        "logprobs": True,  # each generated token's, to read how sure the model was of each value
    }
    return prioritised(request, priority)


def choice_request(
    model: str, prompt: Prompt, options: Sequence[str], *, temperature: float, seed: int, priority: int = 0
) -> dict[str, Any]:
    """Keyword arguments of `chat.completions.create` for one prompt answered by one of
    `options` (one token each), with the top log-probabilities of that token (vLLM's
    `structured_outputs.choice`)."""
    request = {
        "model": model,
        "messages": prompt.messages(),
        "extra_body": {"structured_outputs": {"choice": list(options)}},
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
        "temperature": temperature,
        "seed": seed,
        "max_tokens": 1,
    }
    return prioritised(request, priority)


def prioritised(request: dict[str, Any], priority: int) -> dict[str, Any]:
    """`request` with vLLM's `priority` in its extra body; unchanged for the default 0, which
    every server accepts (any other value only a server that schedules by priority)."""
    if not priority:
        return request
    return {**request, "extra_body": {**request.get("extra_body", {}), "priority": priority}}


def without_priority(request: dict[str, Any]) -> dict[str, Any]:
    """`request` as a server that does not schedule by priority accepts it."""
    extra = {k: v for k, v in request.get("extra_body", {}).items() if k != "priority"}
    rest = {k: v for k, v in request.items() if k != "extra_body"}
    return {**rest, "extra_body": extra} if extra else rest
