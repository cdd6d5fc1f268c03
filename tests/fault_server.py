"""A scriptable OpenAI-compatible server for testing clients against faults, no engine needed.

It serves `/v1/models` and `/v1/chat/completions` from a thread on a free 127.0.0.1 port.
A good answer echoes the user message as `{"echo": ...}` (valid under `ECHO_SCHEMA`), so a
test sees which prompt each result came from; `answer=` replaces that with any function of
the request body (a deterministic stand-in for a model). A choice request (vLLM's
`structured_outputs.choice`) is answered by one of its options, with log-probabilities.
Faults, per chat request:

- `"500"`, `"503"`, `"429"`, `"400"`: that HTTP status with an OpenAI-style error body;
- `"hang"`: no answer for `hang_seconds` (longer than any client timeout in the tests);
- `"invalid"`: content that is not JSON; `"cut"`: JSON cut off, `finish_reason="length"`;
  `"empty"`: an answer with no choices;
- `"ok"`: a good answer.

`refuse_priority = True` answers a request with a nonzero `priority` with a 400, as a
server that does not schedule by priority may (older vLLM, strict proxies).
`retry_after` (seconds, as text) goes out as a `Retry-After` header on 429 and 503.
`script(...)` queues faults for the next requests in arrival order; `per_comment` maps a
user message to the fault it always gets; `fault_rates(seed, {"500": 0.2})` draws a fault
for every other request at those rates; `down = True` makes every endpoint answer 503.
Each recorded body gets `_seen`, its arrival time in ns (comparable across servers).
"""
from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import threading
import time
import zlib
from collections import deque
from typing import Any, Callable

import uvicorn
from fastapi import FastAPI, Request
from starlette.requests import ClientDisconnect
from fastapi.responses import JSONResponse

ECHO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"echo": {"type": "string"}},
    "required": ["echo"],
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "FaultServer", "code": status}}, status_code=status, headers=headers
    )


Answer = Callable[[dict[str, Any]], dict[str, Any]]


def echo(body: dict[str, Any]) -> dict[str, Any]:
    """The default good answer: the user message, under `ECHO_SCHEMA`."""
    return {"echo": body["messages"][-1]["content"]}


def schema_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A deterministic stand-in model: a value valid under the request's JSON schema, its
    enum choices drawn from a hash of the prompt (same prompt, same answer), never the last
    choice of several (a walk's "none of these"), so a walk always goes down to a leaf."""
    digest = zlib.crc32(json.dumps(body["messages"]).encode())

    def value(schema: dict[str, Any]) -> Any:
        if "enum" in schema:
            return schema["enum"][digest % max(1, len(schema["enum"]) - 1)]
        kind = schema.get("type")
        if kind == "object":
            return {name: value(sub) for name, sub in schema.get("properties", {}).items()}
        if kind == "array":
            return [value(schema["items"]) for _ in range(max(1, schema.get("minItems", 0)))]
        if kind == "string":
            return "stand-in"[: schema.get("maxLength", 8)]
        if kind == "boolean":
            return bool(digest % 2)
        if kind == "integer":
            return schema.get("minimum", 1)
        raise AssertionError(f"no stand-in value for {schema}")

    return value(body["response_format"]["json_schema"]["schema"])


def _options(body: dict[str, Any]) -> list[str]:
    """A choice request's options (vLLM's `structured_outputs.choice`); none for a schema request."""
    return list(body.get("structured_outputs", {}).get("choice", []))


def _choice_answer(body: dict[str, Any]) -> str | None:
    """A choice request's answer: one option, drawn from a hash of the prompt as `schema_answer` does."""
    options = _options(body)
    return options[zlib.crc32(json.dumps(body["messages"]).encode()) % len(options)] if options else None


def _choice_logprobs(body: dict[str, Any], content: str) -> dict[str, Any] | None:
    """The first token's top log-probabilities, as vLLM gives them for a choice: the answer
    most likely (0.7), the other options sharing the rest."""
    options = _options(body)
    if not options or content not in options:
        return None
    rest = 0.3 / max(1, len(options) - 1)
    top = [{"token": o, "logprob": math.log(0.7 if o == content else rest), "bytes": None} for o in options]
    return {"content": [{"token": content, "logprob": math.log(0.7), "bytes": None, "top_logprobs": top}]}


class FaultServer:
    """Context manager: `with FaultServer(models=["m"]) as srv: ... srv.url ...`."""

    def __init__(
        self,
        models: list[str] | None = None,
        *,
        delay: float = 0.0,
        hang_seconds: float = 30.0,
        answer: Answer = echo,
        api_key: str | None = None,
    ) -> None:
        self.models = models or ["test-model"]
        self.answer = answer
        self.api_key = api_key  # when set, every request needs `Authorization: Bearer KEY`, as vLLM's --api-key
        self.retry_after: str | None = None
        self.logprobs = True  # False: answers carry none, as a server started with --max-logprobs 0
        self.delay = delay  # seconds every chat answer takes, to make concurrency visible
        self.hang_seconds = hang_seconds
        self.down = False
        self.refuse_priority = False
        self.per_comment: dict[str, str] = {}
        self.port = 0
        self.requests = 0  # chat completions received
        self.model_requests = 0  # GET /v1/models received
        self.tokenize_requests = 0  # POST /tokenize received
        self.max_tokenize_concurrency = 0  # the most /tokenize requests in flight at once
        self.max_model_len = 1_000_000  # what /tokenize reports
        self._ids: dict[str, int] = {}
        self._vocabulary: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.max_concurrency = 0
        self._in_flight = 0
        self._tokenizing = 0
        self._script: deque[str] = deque()
        self._rates: dict[str, float] = {}
        self._random = random.Random(0)
        self._stopping = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *faults: str) -> None:
        """Queue faults for the next chat requests, in the order they arrive."""
        self._script.extend(faults)

    def fault_rates(self, seed: int, rates: dict[str, float]) -> None:
        """Answer each request not otherwise scripted with a fault drawn at these rates."""
        self._random = random.Random(seed)
        self._rates = dict(rates)

    def _tokens(self, text: str) -> list[int]:
        ids = []
        for k in range(0, len(text), 4):
            piece = text[k : k + 4]
            if piece not in self._ids:
                self._ids[piece] = len(self._vocabulary)
                self._vocabulary.append(piece)
            ids.append(self._ids[piece])
        return ids

    def _drawn(self) -> str:
        draw, edge = self._random.random(), 0.0
        for fault, rate in self._rates.items():
            edge += rate
            if draw < edge:
                return fault
        return "ok"

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def authorize(request: Request, call_next: Any) -> Any:
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
            return await call_next(request)

        @app.get("/v1/models")
        async def models() -> JSONResponse:
            self.model_requests += 1
            if self.down:
                return _error(503, "server is down")
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fault"} for m in self.models]
            return JSONResponse({"object": "list", "data": data})

        @app.post("/tokenize")
        async def tokenize(request: Request) -> JSONResponse:
            """vLLM's endpoint with a stand-in tokenizer: a token per 4 characters, 10 per message."""
            body = await request.json()
            self.tokenize_requests += 1
            self._tokenizing += 1
            self.max_tokenize_concurrency = max(self.max_tokenize_concurrency, self._tokenizing)
            try:
                await asyncio.sleep(self.delay)
                if "messages" in body:
                    count = sum(10 + len(self._tokens(m["content"])) for m in body["messages"])
                    return JSONResponse({"count": count, "max_model_len": self.max_model_len, "tokens": []})
                tokens = self._tokens(body["prompt"])
                return JSONResponse({"count": len(tokens), "max_model_len": self.max_model_len, "tokens": tokens})
            finally:
                self._tokenizing -= 1

        @app.post("/detokenize")
        async def detokenize(request: Request) -> JSONResponse:
            return JSONResponse({"prompt": "".join(self._vocabulary[t] for t in (await request.json())["tokens"])})

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            try:
                body = await request.json()
            except ClientDisconnect:  # a client killed mid-request
                return _error(499, "client gone")
            self.requests += 1
            body["_seen"] = time.monotonic_ns()
            self.bodies.append(body)
            self._in_flight += 1
            self.max_concurrency = max(self.max_concurrency, self._in_flight)
            try:
                return await self._answer(body)
            finally:
                self._in_flight -= 1

        return app

    async def _answer(self, body: dict[str, Any]) -> JSONResponse:
        comment = body["messages"][-1]["content"]
        fault = "503" if self.down else self.per_comment.get(comment) or (
            self._script.popleft() if self._script else self._drawn()
        )
        await asyncio.sleep(self.delay)
        if self.refuse_priority and body.get("priority"):
            return _error(400, f"Got priority {body['priority']} but Priority scheduling is not enabled.")
        if fault == "hang":
            await self._hang()
        if fault.isdigit():
            message = {
                "400": "This model's maximum context length is 2048 tokens; the prompt has 5000",
                "429": "too many requests",
            }.get(fault, "internal fault injected")
            busy = fault in ("429", "503") and self.retry_after is not None
            return _error(int(fault), message, {"Retry-After": self.retry_after} if busy else None)
        content, finish = {
            "invalid": ("this is not json", "stop"),
            "cut": ('{"echo": "' + comment[:3], "length"),
        }.get(fault) or (_choice_answer(body) or json.dumps(self.answer(body)), "stop")
        choices = [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish,
             "logprobs": _choice_logprobs(body, content) if self.logprobs else None}
        ]
        return JSONResponse(
            {
                "id": f"chatcmpl-{self.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [] if fault == "empty" else choices,
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                          "prompt_tokens_details": {"cached_tokens": 8}},
            }
        )

    async def _hang(self) -> None:
        """Sleep `hang_seconds`, but let `stop()` end it so the server stops without noise."""
        deadline = time.monotonic() + self.hang_seconds
        while not self._stopping and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def start(self) -> "FaultServer":
        """Listen on the port used before (a restart) or a free one."""
        self._stopping = False
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fault server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop listening; hanging requests end at once."""
        self._stopping = True
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
