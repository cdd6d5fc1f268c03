"""What the parent and an engine worker say to each other over their pipe (all picklable).

Parent to worker: a list of `Request`s to add to the running batch, or None (finish what
is running, then exit). Worker to parent: `("ready", None)` or `("error", why)` once at
start, then lists of `(request id, Generated)` as requests finish, step by step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base import JSONSchema, Prompt


@dataclass(frozen=True)
class EngineConfig:
    """What a worker needs to build its engine (sent at spawn)."""

    name: str
    env: dict[str, str]
    llm_args: dict[str, Any]
    temperature: float
    seed: int

    @property
    def max_length(self) -> int:
        return self.llm_args["max_model_len"]


@dataclass(frozen=True)
class Request:
    """One prompt to answer under a JSON schema, or (with `options`) by one of them."""

    id: int
    prompt: Prompt
    schema: JSONSchema | None  # None: a choice
    max_tokens: int
    options: tuple[str, ...] = ()  # a choice's one-token options
    urgent: bool = False  # for a small request someone waits for: before every other waiting one


@dataclass(frozen=True)
class Generated:
    """One prompt's raw outcome in the worker, before the parent parses it."""

    text: str | None = None
    error: str | None = None
    truncated: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the prefix cache served
    cut_off: bool = False  # stopped by max_tokens, so the JSON is likely incomplete
    top_logprobs: dict[str, float] | None = None  # a choice's first token: text -> log-probability
    tokens: tuple[tuple[str, float], ...] = ()  # each generated token and its log-probability


Finished = list[tuple[int, Generated]]  # one message from the worker: requests done since the last
