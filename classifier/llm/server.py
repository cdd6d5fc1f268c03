"""VLLMServerProcessor: the processor seam over one or more OpenAI-compatible servers.

Each prompt is one chat completion under `response_format=json_schema`. Load goes to the
server with the fewest requests in flight; a server that keeps failing is set aside and
probed in the background until it answers again, so one dead server costs retries, not
the batch. Every failure stays with its item: the other items of a batch never notice.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai

from ..settings import EngineSettings
from .base import Health, ItemResult, JSONSchema, Prompt, Usage
from .errors import (
    BackendUnavailable,
    ConfigurationError,
    ContextOverflow,
    InvalidOutput,
    ModelNotFound,
    ProcessorError,
    RequestFailed,
)
from .fairness import FairShare
from .probabilities import TOP_LOGPROBS, choice_answer, spelled
from .schema import parse_output
from .server_context import ContextGuard, TokenizerUnavailable

BACKEND = "vllm-server"
# While a small request (a comment or two) has a request in flight, the others keep to this
# many together: a server batches what it is sent in arrival order, so the small request's
# steps stay short only if little else is in them (`llm.fairness`).
SHARED = 2
logger = logging.getLogger(__name__)
URL_FORM = "http://host:port/v1"
START_HINT = (
    "is the server running there (python -m vllm.entrypoints.openai.api_server "
    f"--model ... --port ...), and is the URL of the form {URL_FORM}?"
)


def normalise_url(url: str) -> str:
    """`http://h:p`, `http://h:p/` and `http://h:p/v1/` all mean `http://h:p/v1`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"server URL {url!r} is not an http(s) URL; expected the form {URL_FORM}"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def chat_request(
    model: str,
    prompt: Prompt,
    schema: JSONSchema,
    *,
    max_tokens: int,
    temperature: float,
    seed: int,
) -> dict[str, Any]:
    """Keyword arguments of `chat.completions.create` for one prompt under a schema.

    Whitespace inside the JSON is the server's setting: start vLLM with
    `--structured-outputs-config '{"backend": "xgrammar", "disable_any_whitespace": true}'` (see the README)."""
    return {
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


def choice_request(
    model: str, prompt: Prompt, options: Sequence[str], *, temperature: float, seed: int
) -> dict[str, Any]:
    """Keyword arguments of `chat.completions.create` for one prompt answered by one of
    `options` (one token each), with the top log-probabilities of that token (vLLM's
    `structured_outputs.choice`)."""
    return {
        "model": model,
        "messages": prompt.messages(),
        "extra_body": {"structured_outputs": {"choice": list(options)}},
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
        "temperature": temperature,
        "seed": seed,
        "max_tokens": 1,
    }


Parse = Callable[[Any], dict[str, Any]]  # a response's first choice -> the item's value


@dataclass(eq=False)
class _Server:
    """One URL with its client and the state the load balancer reads."""

    url: str
    client: openai.AsyncOpenAI
    http: httpx.AsyncClient  # the server's root, for /tokenize and /detokenize
    in_flight: int = 0
    sent: int = 0  # requests dispatched, the tie-breaker that spreads an idle start
    failures: int = 0  # consecutive
    healthy: bool = True
    probe: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The URL as messages, logs and /health show it: without a user or password in it."""
        return redacted(self.url)


def redacted(url: str) -> str:
    """`http://user:secret@host:8000/v1` -> `http://***@host:8000/v1`; other URLs unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _describe(exc: BaseException) -> str:
    """The innermost cause of a connection error, which says more than "Connection error."."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds from a `Retry-After: N` header; the rarer HTTP-date form is left to our backoff."""
    try:
        seconds = float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _status_message(exc: openai.APIStatusError) -> str:
    """The server's own words: the client unwraps `{"error": {...}}`; FastAPI says `detail`."""
    body = exc.body
    message = (body.get("message") or body.get("detail")) if isinstance(body, dict) else body
    return f"HTTP {exc.status_code}: {message or exc.message}"


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
        self._eject_after = eject_after
        self._retry_backoff = retry_backoff
        self._max_backoff = max_backoff
        self._probe_timeout = min(probe_timeout, settings.request_timeout)
        self.model = settings.llm or ""
        self.usage = Usage()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.log_probabilities: bool | None = None  # whether the servers give them (seen on choice answers)
        self._servers: list[_Server] = []
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
        self._servers = [
            _Server(
                url,
                openai.AsyncOpenAI(
                    base_url=url,
                    api_key=key,
                    max_retries=0,  # the retry policy is ours, and counted per item
                    timeout=self._settings.request_timeout,
                ),
                httpx.AsyncClient(base_url=url.removesuffix("/v1"), timeout=self._settings.request_timeout,
                                  headers={"Authorization": f"Bearer {key}"}),
            )
            for url in self._urls
        ]
        try:
            listed = await asyncio.gather(*(self._list_models(s) for s in self._servers))
            for server, models in zip(self._servers, listed):
                self._check_model(server, models)
        except ProcessorError:
            await self.close()
            raise
        self._guard = ContextGuard(self._tokenizer_post, self.model, self._settings.max_length)

    async def _tokenizer_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to a healthy server's root (`/tokenize`, `/detokenize`): they all serve one model.
        Within the same `--max-concurrent` slots as completions: long comments cannot flood a server."""
        async with self._slots.place():
            server = self._pick()
            try:
                response = await server.http.post(path, json=body)
            except httpx.HTTPError as exc:
                raise RequestFailed(f"{path} failed ({_describe(exc)})") from exc
        if response.status_code in (404, 405):
            raise TokenizerUnavailable(f"the server at {server.name} has no {path} (HTTP {response.status_code})")
        if response.status_code != 200:
            raise RequestFailed(f"{path} answered HTTP {response.status_code}: {response.text[:200]}")
        return response.json()

    def _check_model(self, server: _Server, models: list[str]) -> None:
        if not models:
            raise ModelNotFound(f"the server at {server.name} serves no model")
        if not self.model:
            self.model = models[0]
        if self.model not in models:
            raise ModelNotFound(
                f"the server at {server.name} does not serve model {self.model!r}; "
                f"it serves: {', '.join(models)}"
            )

    async def _list_models(self, server: _Server) -> list[str]:
        """GET /v1/models, or `BackendUnavailable` naming the URL and the likely mistake."""
        try:
            async with asyncio.timeout(self._probe_timeout):
                page = await server.client.models.list(timeout=self._probe_timeout)
        except TimeoutError:
            raise BackendUnavailable(
                f"the server at {server.name} did not answer GET /models within "
                f"{self._probe_timeout:g} s; {START_HINT}"
            ) from None
        except openai.AuthenticationError as exc:
            raise BackendUnavailable(
                f"the server at {server.name} refused the API key ({_status_message(exc)}); "
                "give the key it was started with (--vllm-api-key)"
            ) from exc
        except openai.APIStatusError as exc:
            raise BackendUnavailable(
                f"the server at {server.name} answered GET /models with "
                f"{_status_message(exc)}; {START_HINT}"
            ) from exc
        except openai.APIError as exc:
            raise BackendUnavailable(
                f"cannot reach the server at {server.name} ({_describe(exc)}); {START_HINT}"
            ) from exc
        return [model.id for model in page.data]

    async def process_with_schema(
        self, prompts: Sequence[Prompt], schema: JSONSchema, *, max_tokens: int = 256
    ) -> list[ItemResult]:
        """One result per prompt, in order; a failed item never fails the others."""
        if not self._servers:
            raise ProcessorError("VLLMServerProcessor.start() must be awaited before use")
        settings = self._settings

        def request(prompt: Prompt) -> dict[str, Any]:
            return chat_request(self.model, prompt, schema, max_tokens=max_tokens, temperature=settings.temperature,
                                seed=settings.seed)

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
        if not self._servers:
            raise ProcessorError("VLLMServerProcessor.start() must be awaited before use")
        settings = self._settings

        def request(prompt: Prompt) -> dict[str, Any]:
            return choice_request(self.model, prompt, options, temperature=settings.temperature, seed=settings.seed)

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
                last = server = self._pick(avoid=last)
                try:
                    return await self._attempt(server, request, parse)
                except RequestFailed as exc:
                    error, asked = f"server {server.name}: {exc}", exc.retry_after
                except InvalidOutput as exc:
                    error, asked = f"server {server.name}: {exc}", None
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
            f"the per-item retry deadline is {self._settings.retry_deadline:g} s)"
        )

    def _wait(self, attempt: int, asked: float | None) -> float:
        """Exponential backoff, capped, with jitter so retries of one burst do not arrive
        together; never shorter than the Retry-After a busy server asked for, up to one
        request timeout (a server that asks for longer is as good as down)."""
        backoff = min(self._max_backoff, self._retry_backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        if asked is None:
            return backoff
        return max(backoff, min(asked, self._settings.request_timeout))

    def _pick(self, avoid: _Server | None = None) -> _Server:
        """The healthy server with the fewest requests in flight, other than `avoid` (the
        one an item's last attempt failed on) when another is healthy; if none is healthy,
        the one with the fewest failures in a row (an attempt beats failing without one)."""
        healthy = [s for s in self._servers if s.healthy]
        others = [s for s in healthy if s is not avoid]
        if others or healthy:
            return min(others or healthy, key=lambda s: (s.in_flight, s.sent))
        return min(self._servers, key=lambda s: (s.failures, s is avoid, s.in_flight, s.sent))

    async def _attempt(self, server: _Server, request: dict[str, Any], parse: Parse) -> ItemResult:
        """One request: the parsed value with its tokens, or `RequestFailed`/`InvalidOutput`
        (worth another attempt) or another `ProcessorError` (not)."""
        timeout = self._settings.request_timeout
        server.in_flight += 1
        server.sent += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            async with asyncio.timeout(timeout):
                response = await server.client.chat.completions.create(**request)
        except (TimeoutError, openai.APITimeoutError):
            self._failed(server)
            raise RequestFailed(f"no answer within {timeout:g} s") from None
        except openai.APIConnectionError as exc:
            self._failed(server)
            raise RequestFailed(f"connection failed ({_describe(exc)})") from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 429:
                raise RequestFailed(f"server busy, {_status_message(exc)}", _retry_after(exc)) from exc
            if exc.status_code >= 500:
                self._failed(server)
                raise RequestFailed(_status_message(exc), _retry_after(exc)) from exc
            raise ProcessorError(_status_message(exc)) from exc
        except openai.APIError as exc:
            raise ProcessorError(f"unexpected answer ({_describe(exc)})") from exc
        finally:
            server.in_flight -= 1
            self.in_flight -= 1
        self._answered(server)
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

    def _failed(self, server: _Server) -> None:
        server.failures += 1
        if server.healthy and server.failures >= self._eject_after:
            server.healthy = False
            server.probe = asyncio.create_task(self._probe_until_back(server))

    def _answered(self, server: _Server) -> None:
        server.failures = 0
        if not server.healthy:
            server.healthy = True
            if server.probe is not None and server.probe is not asyncio.current_task():
                server.probe.cancel()
            server.probe = None

    async def _probe_until_back(self, server: _Server) -> None:
        """Re-admit an ejected server once it completes a one-token request again (listing our
        model is not enough: a server whose engine died still lists it)."""
        delay = self._retry_backoff
        while not server.healthy:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            if await self._completes(server):
                self._answered(server)
            delay = min(self._max_backoff, delay * 2)

    async def _completes(self, server: _Server) -> bool:
        try:
            async with asyncio.timeout(self._probe_timeout):
                await server.client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": "ping"}], max_tokens=1)
        except (TimeoutError, openai.APIError):
            return False
        return True

    async def _serves_model(self, server: _Server) -> bool:
        try:
            return self.model in await self._list_models(server)
        except BackendUnavailable:
            return False

    async def health(self, *, probe: bool = True) -> Health:
        """With `probe`, asks every server for its models now; ready if one serves ours and is
        not ejected. It never changes routing: only requests eject a server, and only the
        background probe's completed request re-admits it. Without `probe`, it reports the
        balancer's view and sends nothing."""
        if probe:
            answers = await asyncio.gather(*(self._serves_model(s) for s in self._servers))
            ok = any(serves and s.healthy for s, serves in zip(self._servers, answers))
        else:
            answers = [s.healthy for s in self._servers]
            ok = any(answers)
        return Health(
            ok=ok,
            backend=self.backend,
            model=self.model,
            detail={
                "servers": [
                    {"url": s.name, "healthy": s.healthy, "answers": answer, "in_flight": s.in_flight}
                    for s, answer in zip(self._servers, answers)
                ],
                "log_probabilities": {None: "not seen yet", True: "given"}.get(
                    self.log_probabilities, "not given: decisions follow the word the model chose, probability null"),
            },
        )

    async def close(self) -> None:
        """Stop the background probes and close every client; safe to call twice."""
        probes = [s.probe for s in self._servers if s.probe is not None]
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        await asyncio.gather(*(s.client.close() for s in self._servers), *(s.http.aclose() for s in self._servers))
        self._servers = []
