"""The worker side: one vLLM engine, driven step by step, in its own process.

The worker runs vLLM's engine loop itself (`LLMEngine.add_request` and `step`, the loop
`LLM.generate` and `AsyncLLM` run): between two steps it takes whatever requests the parent
sent, and they join the running batch as `admission` says (a small request's at the next
step: continuous batching) instead of waiting for a whole `generate` pass to end; each
request's answer goes back the step it finishes. vLLM's `AsyncLLM` would run this same engine core in a second process of its
own (a ~1.6 GB front end, and a second process competing with the engine's pinned threads
on a CPU); stepping it here keeps one process per engine.

Prompts are rendered and counted with the model's own tokenizer here and handed to vLLM as
token ids, so the count that guards the context window is exactly what the engine sees.
"""
from __future__ import annotations

import itertools
import os
import signal
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from ..base import Prompt
from ..errors import ContextOverflow
from ..probabilities import TOP_LOGPROBS, spelled
from .admission import Admission
from .messages import EngineConfig, Finished, Generated, Request


def worker_main(conn: Connection, config: EngineConfig) -> None:
    """Worker process entry: build the engine, then serve requests until told to stop.

    Ctrl-C reaches the whole process group; the worker ignores it and lets the parent
    stop it cleanly (or sees the pipe close if the parent dies).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(config.env)  # before vLLM or torch is imported
    try:
        engine = Engine(config)
    except BaseException as exc:  # report anything, SystemExit from vLLM included
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    serve(conn, engine)


def serve(conn: Connection, engine: "Engine") -> None:
    """Take requests between steps and send back each step's finished ones. Idle, wait for
    the next message; after None, finish what is held and return."""
    stopping = False
    while True:
        idle = not engine.busy
        if idle and stopping:
            return
        wait: float | None = None if idle else 0  # idle: block until the parent says something
        while not stopping and conn.poll(wait):
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if message is None:
                stopping = True
            else:
                engine.waiting.queue(message)
            wait = 0
        finished = engine.admit() + engine.step()
        if finished:
            conn.send(finished)


class Engine:
    """The vLLM engine of one worker, its queue (`Admission`), and the prompt rendering and
    context guard."""

    def __init__(self, config: EngineConfig) -> None:
        from vllm import LLM

        self.config = config
        self.llm = LLM(**config.llm_args)
        self.engine = self.llm.llm_engine
        self.tokenizer = self.llm.get_tokenizer()
        # vLLM's request id -> the request and whether it was truncated, in the order admitted
        self.running: dict[str, tuple[Request, bool]] = {}
        self._keys = itertools.count()  # vLLM's request ids: a request taken up again gets a new one
        self.waiting = Admission()  # to join the running batch

    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    def admit(self) -> Finished:
        """Move waiting requests into the running batch, and others back, as `Admission` plans."""
        running = list(self.running)
        add, back = self.waiting.plan([self.running[key][0] for key in running])
        if back:
            self.engine.abort_request([running[k] for k in back])
            for k in back:
                del self.running[running[k]]
        return self._add(add)

    def _add(self, requests: list[Request]) -> Finished:
        """Add requests to the running batch; those that cannot run are answered at once:
        a prompt that cannot fit, or one the engine refuses (a schema its grammar rejects)."""
        refused: Finished = []
        for request in requests:
            try:
                ids, truncated = self._encode(request.prompt, request.max_tokens)
                key = str(next(self._keys))
                self.engine.add_request(key, {"prompt_token_ids": ids}, self._sampling(request))
            except ContextOverflow as exc:
                refused.append((request.id, Generated(error=str(exc))))
            except Exception as exc:  # noqa: BLE001 - the engine's own check of this request
                refused.append((request.id, Generated(error=f"engine refused the request: {type(exc).__name__}: {exc}")))
            else:
                self.running[key] = (request, truncated)
        return refused

    def step(self) -> Finished:
        """One engine step; the requests it finished. An exception here is the engine's
        failure: it ends the process, and the parent replaces it."""
        if not self.running:
            return []
        finished: Finished = []
        for output in self.engine.step():
            if output.finished and output.request_id in self.running:
                request, truncated = self.running.pop(output.request_id)
                finished.append((request.id, self._generated(output, truncated)))
        return finished

    def _sampling(self, request: Request) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        constraint = StructuredOutputsParams(choice=list(request.options)) if request.options else (
            StructuredOutputsParams(json=request.schema))
        return SamplingParams(
            temperature=self.config.temperature,
            seed=self.config.seed,
            max_tokens=request.max_tokens,
            structured_outputs=constraint,
            logprobs=TOP_LOGPROBS if request.options else 0,  # 0: the generated token's own
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    @staticmethod
    def _generated(output: Any, truncated: bool) -> Generated:
        completion = output.outputs[0]
        steps = completion.logprobs or []
        first = steps[0] if steps else None
        return Generated(
            text=completion.text,
            truncated=truncated,
            prompt_tokens=len(output.prompt_token_ids or ()),
            completion_tokens=len(completion.token_ids),
            cached_tokens=output.num_cached_tokens or 0,
            cut_off=completion.finish_reason == "length",
            top_logprobs={lp.decoded_token or "": lp.logprob for lp in first.values()} if first else None,
            tokens=spelled(completion.text, [(step[token].decoded_token or "", step[token].logprob)
                                              for step, token in zip(steps, completion.token_ids) if token in step]),
        )

    def _render(self, prompt: Prompt, comment: str) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            replace(prompt, comment=comment).messages(), tokenize=False, add_generation_prompt=True
        )
        # The template writes its own special tokens, as vLLM's chat entry point assumes.
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _encode(self, prompt: Prompt, max_tokens: int) -> tuple[list[int], bool]:
        """Token ids that leave room for `max_tokens`, shortening only the comment."""
        limit = self.config.max_length - max_tokens
        ids = self._render(prompt, prompt.comment)
        if len(ids) <= limit:
            return ids, False
        fixed = len(self._render(prompt, ""))
        comment = self.tokenizer.encode(prompt.comment, add_special_tokens=False)
        keep = min(len(comment), limit - fixed)
        while keep > 0:
            # Decoding a cut can re-tokenize a little longer; shrink by the excess.
            ids = self._render(prompt, self.tokenizer.decode(comment[:keep]))
            if len(ids) <= limit:
                return ids, True
            keep -= len(ids) - limit
        raise ContextOverflow(
            f"prompt does not fit the context window: its fixed part is {fixed} tokens and "
            f"max_tokens is {max_tokens}, which leaves no room for the comment within "
            f"max_length={self.config.max_length}; shorten the instructions or raise max_length"
        )
