"""The processor seam: what the classifier needs from an LLM backend, and nothing more.

The classifier and the capabilities only ever call `Processor.process_with_schema`;
which engine answers (in-process vLLM or a remote OpenAI-compatible server) is the
pool's business.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol, Sequence, runtime_checkable

JSONSchema = dict[str, Any]


@dataclass(frozen=True)
class Prompt:
    """A chat prompt split where the prefix cache needs it split.

    `instructions` is the fixed part (task, definitions, output rules) shared by many
    comments and rendered first; `comment` is the text being classified, rendered last.
    A `question`, where given, follows the quoted comment in the same message: a small
    model answers a question it has just read far better than one asked before the
    comment. A `context`, where given, comes before the comment in its message: what is
    known about this comment alone (labelled comments like it), so it never splits the
    shared prefix. Backends that must shorten a prompt only ever shorten `comment`.
    """

    instructions: str
    comment: str
    question: str = ""
    context: str = ""

    def messages(self) -> list[dict[str, str]]:
        """OpenAI-style chat messages: the shared part as system; the context, the comment (then
        the question) as user."""
        user = f'Comment: "{self.comment}"\n\n{self.question}' if self.question else self.comment
        if self.context:
            user = f"{self.context}\n\nThe comment to analyse:\n{user}"
        return [
            {"role": "system", "content": self.instructions},
            {"role": "user", "content": user},
        ]


@dataclass(frozen=True)
class ItemResult:
    """One prompt's outcome: a schema-valid parsed value, or an error message."""

    value: dict[str, Any] | None = None
    error: str | None = None
    truncated: bool = False
    # The generated tokens with their log-probabilities, where the backend returns them
    # (read by `llm.probabilities` to say how sure the model was of each part of `value`).
    tokens: tuple[tuple[str, float], ...] = ()
    # The error is the backend's, not the prompt's: no engine or server could be reached or
    # answered in time. Another backend may answer it (`llm.chain`).
    unavailable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, error: str, *, unavailable: bool = False) -> "ItemResult":
        return cls(value=None, error=error, unavailable=unavailable)


@dataclass
class Usage:
    """Running totals a processor keeps, read by /stats, /metrics and the evaluation."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    truncations: int = 0
    # Prompt tokens the engine's prefix cache served instead of computing them: counted by
    # the local backend, and by servers that report them (vLLM's --enable-prompt-tokens-details).
    cached_prompt_tokens: int = 0

    def add(self, other: "Usage") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> "Usage":
        return Usage(**vars(self))

    def minus(self, earlier: "Usage") -> "Usage":
        """Usage accrued since `earlier` (a snapshot of the same counter)."""
        return Usage(**{k: v - getattr(earlier, k) for k, v in vars(self).items()})


@dataclass(frozen=True)
class Health:
    ok: bool
    backend: str
    model: str
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Processor(Protocol):
    """An LLM backend that answers prompts under a JSON schema.

    `process_with_schema` returns exactly one `ItemResult` per prompt, in order. A
    prompt that fails (after the backend's own retries) yields an `ItemResult` with an
    error; it never raises for one bad item, so the other items are never lost.
    """

    backend: str
    model: str
    usage: Usage

    async def process_with_schema(
        self, prompts: Sequence[Prompt], schema: JSONSchema, *, max_tokens: int = 256
    ) -> list[ItemResult]: ...

    async def process_choice(self, prompts: Sequence[Prompt], options: Sequence[str]) -> list[ItemResult]:
        """Per prompt, one of `options` (each one token) and how probable the model found
        every option: `{"choice": "B", "probabilities": {"A": 0.1, "B": 0.85, ...}}`."""
        ...

    async def health(self, *, probe: bool = True) -> Health:
        """Whether the backend can answer. `probe=False` reads what the processor already
        knows (cheap, for liveness checks); `probe=True` asks the engine or servers now.
        Neither may change how work is routed (a health check never ejects a server)."""
        ...

    async def close(self) -> None: ...


async def process_in_batches(
    processor: Processor, prompts: Sequence[Prompt], schema: JSONSchema, *, max_tokens: int, batch_size: int
) -> list[ItemResult]:
    """`process_with_schema` over chunks of at most `batch_size` prompts (see `in_batches`)."""
    return await in_batches(
        lambda part: processor.process_with_schema(part, schema, max_tokens=max_tokens), prompts, batch_size
    )


async def in_batches(
    call: Callable[[Sequence[Prompt]], Awaitable[list[ItemResult]]], prompts: Sequence[Prompt], batch_size: int
) -> list[ItemResult]:
    """`call` over chunks of at most `batch_size` prompts, one after the other, results in
    prompt order. A huge request thus holds at most one chunk in the backend at a time:
    other callers' prompts join the engine's next batch, or queue for a server slot, beside
    its next chunk instead of behind all of it."""
    results: list[ItemResult] = []
    for k in range(0, len(prompts), batch_size):
        results += await call(prompts[k : k + batch_size])
    return results
