"""VLLMServerProcessor: the processor seam over one or more OpenAI-compatible servers.

Each prompt is one chat completion under `response_format=json_schema`, sent to the server
`Replicas` picks. Every failure stays with its item: the other items of a batch never
notice. A small request (a comment or two, which a person waits for) is sent with a higher
priority to servers that schedule by it (`vllm serve --scheduling-policy priority`); a
server that refuses a priority is asked without one from then on.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace
from typing import Any, Callable, Sequence

import httpx
import openai

from ...settings import EngineSettings
from ..base import Health, ItemResult, JSONSchema, Prompt, Usage
from ..errors import (
    ConfigurationError,
    ContextOverflow,
    InvalidOutput,
    ModelNotFound,
    ProcessorError,
    RequestFailed,
)
from ..fairness import FairShare, requester
from ..probabilities import choice_answer, spelled
from ..schema import parse_output
from ..urls import URL_FORM, normalise_url
from .context import ContextGuard, TokenizerUnavailable
from .replicas import Replica, Replicas, describe, open_replica, retry_after, status_message
from .requests import URGENT, Parse, chat_request, choice_request, without_priority

BACKEND = "vllm-server"
# While a small request (a comment or two) has a request in flight, the others keep to this
# many together: a server batches what it is sent in arrival order, so the small request's
# steps stay short only if little else is in them (`llm.fairness`).
SHARED = 2
PRIORITY_STATES = {None: "not sent yet", True: "accepted", False: "refused: small requests go in arrival order"}
logger = logging.getLogger(__name__)
class VLLMServerProcessor:
    """Answers prompts through OpenAI-compatible servers (`vllm serve` or any other).

    `max_concurrent` bounds requests in flight over all servers together (the places are
    handed round robin between requesters, `llm.fairness`); each attempt
    is bounded by `request_timeout`; an item is retried, on another server where there is
    one, until `retry_deadline` seconds after its first attempt.
    The keyword-only knobs exist so tests can run the same policy in milliseconds.
    """

    backend = BACKEND

    def __init__(
        self,
        settings: EngineSettings,
        *,
        eject_after: int = 3,
        retry_backoff: float = 0.5,
        max_backoff: float = 8.0,
        probe_timeout: float = 5.0,
    ) -> None:
        self._settings = settings
        self._urls = [normalise_url(url) for url in settings.server_urls]
        if not self._urls:
            raise ConfigurationError(f"no server URL given; expected one like {URL_FORM}")
        if settings.max_concurrent < 1:
            raise ConfigurationError(f"max_concurrent must be at least 1, not {settings.max_concurrent}")
        self._policy = dict(eject_after=eject_after, backoff=retry_backoff, max_backoff=max_backoff,
                            probe_timeout=min(probe_timeout, settings.request_timeout))
        self._retry_backoff = retry_backoff
        self._max_backoff = max_backoff
        self.model = settings.llm or ""
        self.usage = Usage()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.log_probabilities: bool | None = None  # whether the servers give them (seen on choice answers)
        self._replicas: Replicas | None = None
        self._slots = FairShare(settings.max_concurrent, SHARED)  # handed fairly between requesters
        self._guard: ContextGuard | None = None

    async def __aenter__(self) -> "VLLMServerProcessor":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open one client per URL and check that every server answers with the model."""
        key = self._settings.server_api_key or "EMPTY"  # any key, unless started with --api-key
        timeout = self._settings.request_timeout
        replicas = Replicas([open_replica(url, key, timeout) for url in self._urls], self.model, **self._policy)
        try:
            listed = await asyncio.gather(*(replicas.list_models(s) for s in replicas.all))
            for server, models in zip(replicas.all, listed):
                self._check_model(server, models)
        except ProcessorError:
            await replicas.close()
            raise
        replicas.model = self.model
        self._replicas = replicas
        self._guard = ContextGuard(self._tokenizer_post, self.model, self._settings.max_length)

    @property
    def _servers(self) -> Replicas:
        if self._replicas is None:
            raise ProcessorError("VLLMServerProcessor.start() must be awaited before use")
        return self._replicas

    async def _tokenizer_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to a healthy server's root (`/tokenize`, `/detokenize`): they all serve one model.
        Within the same `--max-concurrent` slots as completions: long comments cannot flood a server."""
        async with self._slots.place():
            server = self._servers.pick()
            try:
                response = await server.http.post(path, json=body)
            except httpx.HTTPError as exc:
                raise RequestFailed(f"{path} failed ({describe(exc)})") from exc
        if response.status_code in (404, 405):
            raise TokenizerUnavailable(f"the server at {server.name} has no {path} (HTTP {response.status_code})")
        if response.status_code != 200:
            raise RequestFailed(f"{path} answered HTTP {response.status_code}: {response.text[:200]}")
        return response.json()

    def _check_model(self, server: Replica, models: list[str]) -> None:
        if not models:
            raise ModelNotFound(f"the server at {server.name} serves no model")
        if not self.model:
            self.model = models[0]
        if self.model not in models:
            raise ModelNotFound(
                f"the server at {server.name} does not serve model {self.model!r}; "
                f"it serves: {', '.join(models)}"
            )

    async def process_with_schema(
        self, prompts: Sequence[Prompt], schema: JSONSchema, *, max_tokens: int = 256
    ) -> list[ItemResult]:
        """One result per prompt, in order; a failed item never fails the others."""
        settings, priority = self._settings, _priority()

        def request(prompt: Prompt) -> dict[str, Any]:
            return chat_request(self.model, prompt, schema, max_tokens=max_tokens, temperature=settings.temperature,
                                seed=settings.seed, priority=priority)

        def parse(choice: Any) -> dict[str, Any]:
            try:
                return parse_output(choice.message.content or "", schema)
            except InvalidOutput as exc:
                if choice.finish_reason == "length":
                    # The same prompt and max_tokens end at the same place: retrying is waste.
                    raise ProcessorError(f"{exc}; output cut off at max_tokens={max_tokens}") from exc
                raise

        return list(await asyncio.gather(*(self._process_one(p, max_tokens, request, parse) for p in prompts)))

    async def process_choice(self, prompts: Sequence[Prompt], options: Sequence[str]) -> list[ItemResult]:
        """Per prompt `{"choice", "probabilities"}`: the option picked and every option's probability."""
        settings, priority = self._settings, _priority()

        def request(prompt: Prompt) -> dict[str, Any]:
            return choice_request(self.model, prompt, options, temperature=settings.temperature, seed=settings.seed,
                                  priority=priority)

        def parse(choice: Any) -> dict[str, Any]:
            content = choice.logprobs.content if choice.logprobs is not None else None
            top = {alternative.token: alternative.logprob for alternative in content[0].top_logprobs} if content else None
            self.log_probabilities = bool(top)  # some servers never give them (vLLM with --max-logprobs 0)
            return choice_answer(choice.message.content or "", top, options)

        return list(await asyncio.gather(*(self._process_one(p, 1, request, parse) for p in prompts)))

    async def _process_one(
        self, prompt: Prompt, max_tokens: int, request: Callable[[Prompt], dict[str, Any]], parse: Parse
    ) -> ItemResult:
        truncated = False
        if self._guard is not None:
            try:
                prompt, truncated = await self._guard.fit(prompt, max_tokens)
            except ContextOverflow as exc:
                self.usage.errors += 1
                return ItemResult.failure(str(exc))
            except RequestFailed as exc:  # the completion request will say whether it fits
                logger.warning("could not check a long comment against the context window: %s", exc)
        self.usage.truncations += truncated
        result = await self._answer(request(prompt), parse)
        return replace(result, truncated=truncated)

    async def _answer(self, request: dict[str, Any], parse: Parse) -> ItemResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._settings.retry_deadline
        attempt, last = 0, None
        while True:
            attempt += 1
            async with self._slots.place():
                last = server = self._servers.pick(avoid=last)
                try:
                    return await self._attempt(server, request, parse)
                except RequestFailed as exc:
                    error, asked, unanswered = f"server {server.name}: {exc}", exc.retry_after, True
                except InvalidOutput as exc:
                    error, asked, unanswered = f"server {server.name}: {exc}", None, False
                except ProcessorError as exc:
                    self.usage.errors += 1
                    return ItemResult.failure(f"server {server.name}: {exc}")
            wait = self._wait(attempt, asked)
            if loop.time() + wait >= deadline:  # no attempt starts past the deadline
                break
            await asyncio.sleep(wait)
        self.usage.errors += 1
        return ItemResult.failure(
            f"{error} (gave up after {attempt} attempts in {loop.time() - started:.1f} s; "
            f"the per-item retry deadline is {self._settings.retry_deadline:g} s)",
            unavailable=unanswered,
        )

    def _wait(self, attempt: int, asked: float | None) -> float:
        """Exponential backoff, capped, with jitter so retries of one burst do not arrive
        together; never shorter than the Retry-After a busy server asked for, up to one
        request timeout (a server that asks for longer is as good as down)."""
        backoff = min(self._max_backoff, self._retry_backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        if asked is None:
            return backoff
        return max(backoff, min(asked, self._settings.request_timeout))

    async def _attempt(self, server: Replica, request: dict[str, Any], parse: Parse) -> ItemResult:
        """One request: the parsed value with its tokens, or `RequestFailed`/`InvalidOutput`
        (worth another attempt) or another `ProcessorError` (not)."""
        timeout = self._settings.request_timeout
        server.in_flight += 1
        server.sent += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        if server.priority is False:
            request = without_priority(request)
        try:
            async with asyncio.timeout(timeout):
                response = await server.client.chat.completions.create(**request)
        except (TimeoutError, openai.APITimeoutError):
            self._servers.failed(server)
            raise RequestFailed(f"no answer within {timeout:g} s") from None
        except openai.APIConnectionError as exc:
            self._servers.failed(server)
            raise RequestFailed(f"connection failed ({describe(exc)})") from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 429:
                raise RequestFailed(f"server busy, {status_message(exc)}", retry_after(exc)) from exc
            if exc.status_code >= 500:
                self._servers.failed(server)
                raise RequestFailed(status_message(exc), retry_after(exc)) from exc
            if _refused_priority(exc, request):
                server.priority = False
                logger.info("the server at %s does not schedule by priority: small requests go in arrival order",
                            server.name)
                raise RequestFailed("the server does not schedule by priority; asked again without", 0.0) from exc
            raise ProcessorError(status_message(exc)) from exc
        except openai.APIError as exc:
            raise ProcessorError(f"unexpected answer ({describe(exc)})") from exc
        finally:
            server.in_flight -= 1
            self.in_flight -= 1
        self._servers.answered(server)
        if "priority" in request.get("extra_body", {}):
            server.priority = True
        self.usage.llm_calls += 1
        if response.usage is not None:
            self.usage.prompt_tokens += response.usage.prompt_tokens
            self.usage.completion_tokens += response.usage.completion_tokens
            details = response.usage.prompt_tokens_details  # only from servers asked to report it
            self.usage.cached_prompt_tokens += (details.cached_tokens or 0) if details is not None else 0
        if not response.choices:
            raise InvalidOutput("the server answered without a choice")
        choice = response.choices[0]
        content = choice.logprobs.content if choice.logprobs is not None else None
        tokens = spelled(choice.message.content or "", [(t.token, t.logprob) for t in content or ()])
        return ItemResult(value=parse(choice), tokens=tokens)

    async def health(self, *, probe: bool = True) -> Health:
        """With `probe`, asks every server for its models now; ready if one serves ours and is
        not ejected. It never changes routing: only requests eject a server, and only the
        background probe's completed request re-admits it. Without `probe`, it reports the
        balancer's view and sends nothing."""
        if probe:
            answers = await asyncio.gather(*(self._servers.serves_model(s) for s in self._servers.all))
            ok = any(serves and s.healthy for s, serves in zip(self._servers.all, answers))
        else:
            answers = [s.healthy for s in self._servers.all]
            ok = any(answers)
        return Health(
            ok=ok,
            backend=self.backend,
            model=self.model,
            detail={
                "servers": [
                    {"url": s.name, "healthy": s.healthy, "answers": answer, "in_flight": s.in_flight}
                    for s, answer in zip(self._servers.all, answers)
                ],
                # Whether each server took a small request's priority (`vllm serve --scheduling-policy
                # priority` honours it; vLLM without that policy takes it and ignores it).
                "priority": {s.name: PRIORITY_STATES[s.priority] for s in self._servers.all},
                "log_probabilities": {None: "not seen yet", True: "given"}.get(
                    self.log_probabilities, "not given: decisions follow the word the model chose, probability null"),
            },
        )

    async def close(self) -> None:
        """Stop the background probes and close every client; safe to call twice."""
        if self._replicas is not None:
            await self._replicas.close()
            self._replicas = None


def _priority() -> int:
    """The priority of the current requester's prompts: a small request's run first."""
    return URGENT if requester.get().small else 0


def _refused_priority(exc: openai.APIStatusError, request: dict[str, Any]) -> bool:
    """A 400 for a prioritised request from a server not started with the priority policy
    (vLLM: "Got priority -1 but Priority scheduling is not enabled.")."""
    return exc.status_code == 400 and "priority" in request.get("extra_body", {}) and "priority" in str(exc.body).lower()
