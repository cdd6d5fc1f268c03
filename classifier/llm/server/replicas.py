"""The servers behind the server backend and the balancer's view of them.

Load goes to the server with the fewest requests in flight; a server that keeps failing is
set aside and probed in the background until it completes a request again. A health check
never changes that view: only requests set a server aside, only a completed probe brings
it back.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import httpx
import openai

from ..errors import BackendUnavailable
from ..urls import URL_FORM, redacted

START_HINT = (
    "is the server running there (python -m vllm.entrypoints.openai.api_server "
    f"--model ... --port ...), and is the URL of the form {URL_FORM}?"
)


@dataclass(eq=False)
class Replica:
    """One URL with its client and the state the load balancer reads."""

    url: str
    client: openai.AsyncOpenAI
    http: httpx.AsyncClient  # the server's root, for /tokenize and /detokenize
    in_flight: int = 0
    sent: int = 0  # requests dispatched, the tie-breaker that spreads an idle start
    failures: int = 0  # consecutive
    healthy: bool = True
    # Whether it schedules by a request's priority: None until a prioritised request says.
    priority: bool | None = None
    probe: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The URL as messages, logs and /health show it: without a user or password in it."""
        return redacted(self.url)


def open_replica(url: str, key: str, timeout: float) -> Replica:
    """A replica with its OpenAI client (no retries of its own: ours are counted per item)
    and a plain HTTP client on the server's root."""
    return Replica(
        url,
        openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=timeout),
        httpx.AsyncClient(base_url=url.removesuffix("/v1"), timeout=timeout, headers={"Authorization": f"Bearer {key}"}),
    )


def describe(exc: BaseException) -> str:
    """The innermost cause of a connection error, which says more than "Connection error."."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds from a `Retry-After: N` header; the rarer HTTP-date form is left to our backoff."""
    try:
        seconds = float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def status_message(exc: openai.APIStatusError) -> str:
    """The server's own words: the client unwraps `{"error": {...}}`; FastAPI says `detail`."""
    body = exc.body
    message = (body.get("message") or body.get("detail")) if isinstance(body, dict) else body
    return f"HTTP {exc.status_code}: {message or exc.message}"


class Replicas:
    """The servers of one backend: which to send to, which to set aside, and when to take
    one back. The keyword knobs exist so tests can run the same policy in milliseconds."""

    def __init__(self, replicas: list[Replica], model: str, *, eject_after: int, backoff: float,
                 max_backoff: float, probe_timeout: float) -> None:
        self.all = replicas
        self.model = model
        self._eject_after = eject_after
        self._backoff, self._max_backoff = backoff, max_backoff
        self.probe_timeout = probe_timeout

    def pick(self, avoid: Replica | None = None) -> Replica:
        """The healthy server with the fewest requests in flight, other than `avoid` (the
        one an item's last attempt failed on) when another is healthy; if none is healthy,
        the one with the fewest failures in a row (an attempt beats failing without one)."""
        healthy = [s for s in self.all if s.healthy]
        others = [s for s in healthy if s is not avoid]
        if others or healthy:
            return min(others or healthy, key=lambda s: (s.in_flight, s.sent))
        return min(self.all, key=lambda s: (s.failures, s is avoid, s.in_flight, s.sent))

    def failed(self, server: Replica) -> None:
        server.failures += 1
        if server.healthy and server.failures >= self._eject_after:
            server.healthy = False
            server.probe = asyncio.create_task(self._probe_until_back(server))

    def answered(self, server: Replica) -> None:
        server.failures = 0
        if not server.healthy:
            server.healthy = True
            if server.probe is not None and server.probe is not asyncio.current_task():
                server.probe.cancel()
            server.probe = None

    async def _probe_until_back(self, server: Replica) -> None:
        """Re-admit a set-aside server once it completes a one-token request again (listing our
        model is not enough: a server whose engine died still lists it)."""
        delay = self._backoff
        while not server.healthy:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            if await self._completes(server):
                self.answered(server)
            delay = min(self._max_backoff, delay * 2)

    async def _completes(self, server: Replica) -> bool:
        try:
            async with asyncio.timeout(self.probe_timeout):
                await server.client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": "ping"}], max_tokens=1)
        except (TimeoutError, openai.APIError):
            return False
        return True

    async def list_models(self, server: Replica) -> list[str]:
        """GET /v1/models, or `BackendUnavailable` naming the URL and the likely mistake."""
        try:
            async with asyncio.timeout(self.probe_timeout):
                page = await server.client.models.list(timeout=self.probe_timeout)
        except TimeoutError:
            raise BackendUnavailable(
                f"the server at {server.name} did not answer GET /models within "
                f"{self.probe_timeout:g} s; {START_HINT}"
            ) from None
        except openai.AuthenticationError as exc:
            raise BackendUnavailable(
                f"the server at {server.name} refused the API key ({status_message(exc)}); "
                "give the key it was started with (--vllm-api-key)"
            ) from exc
        except openai.APIStatusError as exc:
            raise BackendUnavailable(
                f"the server at {server.name} answered GET /models with "
                f"{status_message(exc)}; {START_HINT}"
            ) from exc
        except openai.APIError as exc:
            raise BackendUnavailable(
                f"cannot reach the server at {server.name} ({describe(exc)}); {START_HINT}"
            ) from exc
        return [model.id for model in page.data]

    async def serves_model(self, server: Replica) -> bool:
        try:
            return self.model in await self.list_models(server)
        except BackendUnavailable:
            return False

    async def close(self) -> None:
        """Stop the background probes and close every client; safe to call twice."""
        probes = [s.probe for s in self.all if s.probe is not None]
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        await asyncio.gather(*(s.client.close() for s in self.all), *(s.http.aclose() for s in self.all))
        self.all = []
