"""LocalVLLMProcessor: vLLM's Python API, one engine process per GPU (or one on CPU).

Each engine lives in its own worker process, started with the spawn method and with
its environment (`CUDA_VISIBLE_DEVICES`, the CPU engine's knobs) set before vLLM is
imported, so several GPUs never see each other and vLLM's thread pinning never
touches the caller. The parent talks to each worker over a pipe from a dedicated
thread, so the event loop never blocks.

Prompts are rendered and counted with the model's own tokenizer inside the worker and
handed to vLLM as token ids, so the count that guards the context window is exactly
what the engine sees. Calls that arrive while a worker is busy are coalesced into its
next batch: one `LLM.generate` per worker per batch, whatever the number of callers.
A worker whose engine dies (the OOM killer, a driver fault) is replaced in the
background; its texts fail fast until the replacement is ready.

The module imports no vLLM or torch itself: a spawned worker imports this module
before it has set its environment. The program that builds a processor must guard
its entry point with `if __name__ == "__main__":` (spawn re-imports it).
"""
from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
import signal
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any, Callable, Sequence

import psutil

from ..settings import EngineSettings
from .base import Health, ItemResult, JSONSchema, Prompt, Usage
from .embedded import model_name, resolve_llm
from .errors import BackendUnavailable, ContextOverflow, InvalidOutput
from .probabilities import TOP_LOGPROBS, choice_answer, spelled
from .schema import parse_output

START_TIMEOUT_S = 900.0  # engine start, model load included; ~15-50 s on CPU
START_POLL_S = 0.5  # how often a start checks for its engine's answer, a timeout and close()
STOP_TIMEOUT_S = 30.0  # a clean stop waits for the batch in flight
# The longest one batch pass may take before the engine is taken for hung: a full batch of
# long answers on the CPU engine takes minutes, a hung engine forever.
CALL_TIMEOUT_S = 1800.0
MAX_RESTARTS = 3  # failed restarts in a row before a crashed worker is left down


@dataclass(frozen=True)
class _EngineConfig:
    """What a worker needs to build its engine (picklable, sent at spawn)."""

    name: str
    env: dict[str, str]
    llm_args: dict[str, Any]
    temperature: float
    seed: int

    @property
    def max_length(self) -> int:
        return self.llm_args["max_model_len"]


@dataclass(frozen=True)
class _Job:
    """One caller's share of a worker batch: prompts under one schema."""

    prompts: tuple[Prompt, ...]
    schema: JSONSchema | None  # None: a choice job
    max_tokens: int
    options: tuple[str, ...] = ()  # a choice job's one-token options


@dataclass(frozen=True)
class _Generated:
    """One prompt's raw outcome in the worker, before the parent parses it."""

    text: str | None = None
    error: str | None = None
    truncated: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the prefix cache served
    cut_off: bool = False  # stopped by max_tokens, so the JSON is likely incomplete
    top_logprobs: dict[str, float] | None = None  # a choice job's first token: text -> log-probability
    tokens: tuple[tuple[str, float], ...] = ()  # each generated token and its log-probability


# --------------------------------------------------------------------------- worker side


def _worker_main(conn: Connection, config: _EngineConfig) -> None:
    """Worker process entry: build the engine, then answer batches until told to stop.

    Ctrl-C reaches the whole process group; the worker ignores it and lets the parent
    stop it cleanly (or sees the pipe close if the parent dies).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(config.env)  # before vLLM or torch is imported
    try:
        engine = _Engine(config)
    except BaseException as exc:  # report anything, SystemExit from vLLM included
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            jobs = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if jobs is None:
            return
        conn.send(("done", engine.run(jobs)))


class _Engine:
    """The vLLM engine of one worker, plus the prompt rendering and context guard."""

    def __init__(self, config: _EngineConfig) -> None:
        from vllm import LLM

        self.config = config
        self.llm = LLM(**config.llm_args)
        self.tokenizer = self.llm.get_tokenizer()

    def run(self, jobs: list[_Job]) -> list[list[_Generated]]:
        """All jobs in one `generate`; if the engine refuses (a schema its grammar
        compiler rejects), retry job by job so only the offending job fails."""
        try:
            return self._generate(jobs)
        except Exception as exc:
            if len(jobs) > 1:
                return [self.run([job])[0] for job in jobs]
            message = f"engine refused the request: {type(exc).__name__}: {exc}"
            return [[_Generated(error=message) for _ in job.prompts] for job in jobs]

    def _generate(self, jobs: list[_Job]) -> list[list[_Generated]]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        results: list[list[_Generated]] = []
        inputs: list[dict[str, list[int]]] = []
        params: list[Any] = []
        slots: list[tuple[int, int, bool]] = []  # (job, item, truncated) per input
        for j, job in enumerate(jobs):
            constraint = StructuredOutputsParams(choice=list(job.options)) if job.options else (
                StructuredOutputsParams(json=job.schema))
            sampling = SamplingParams(
                temperature=self.config.temperature,
                seed=self.config.seed,
                max_tokens=job.max_tokens,
                structured_outputs=constraint,
                logprobs=TOP_LOGPROBS if job.options else 0,  # 0: the generated token's own
            )
            results.append([_Generated()] * len(job.prompts))
            for i, prompt in enumerate(job.prompts):
                try:
                    ids, truncated = self._encode(prompt, job.max_tokens)
                except ContextOverflow as exc:
                    results[j][i] = _Generated(error=str(exc))
                    continue
                inputs.append({"prompt_token_ids": ids})
                params.append(sampling)
                slots.append((j, i, truncated))
        outputs = self.llm.generate(inputs, params, use_tqdm=False) if inputs else []
        for (j, i, truncated), output in zip(slots, outputs, strict=True):
            completion = output.outputs[0]
            steps = completion.logprobs or []
            first = steps[0] if steps else None
            results[j][i] = _Generated(
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
        return results

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


# --------------------------------------------------------------------------- parent side


WorkerMain = Callable[[Connection, _EngineConfig], None]


class _Worker:
    """One engine process and the parent's end of its pipe.

    `start` and `call` block; the processor runs them on this worker's own thread,
    so the pipe is only ever used by one thread at a time.
    """

    def __init__(self, config: _EngineConfig, main: WorkerMain = _worker_main,
                 start_timeout: float = START_TIMEOUT_S, call_timeout: float = CALL_TIMEOUT_S) -> None:
        self.config, self.main, self.start_timeout, self.call_timeout = config, main, start_timeout, call_timeout
        self.name = config.name
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-worker")
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: Connection | None = None
        self._failure: str | None = None
        self._stopped = False
        self.restarting = False  # a replacement engine is starting
        self.failed_restarts = 0  # in a row; past MAX_RESTARTS the worker stays down
        self.pending: list[tuple[_Job, asyncio.Future[list[_Answer]]]] = []
        self.drainer: asyncio.Task[None] | None = None

    def problem(self) -> str | None:
        """None while the worker can take work, else why not (a crash is noticed here)."""
        if self._failure is None:
            if self.process is None:
                return f"{self.name} is not started"
            if not self.process.is_alive():
                self._failure = f"{self.name} exited unexpectedly ({self._exit()})"
        return self._failure

    def start(self) -> None:
        """Spawn the engine process and wait for its "ready"; on any failure (its error, a
        timeout, `stop()` meanwhile) the process and its children are gone when this raises."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.conn = parent
        self.process = process = ctx.Process(target=self.main, args=(child, self.config), name=self.name)
        process.start()
        child.close()  # so the parent's recv sees EOF when the worker dies
        deadline = time.monotonic() + self.start_timeout
        try:
            while not parent.poll(START_POLL_S):
                if self._stopped:
                    raise BackendUnavailable(f"{self.name} was stopped while starting")
                if time.monotonic() > deadline:
                    raise BackendUnavailable(f"{self.name} did not start within {self.start_timeout:g} s")
            kind, detail = parent.recv()
            if kind != "ready":
                raise BackendUnavailable(f"{self.name} failed to start the engine: {detail}")
        except (EOFError, OSError):
            self._end(process, grace=0.0)
            raise BackendUnavailable(f"{self.name} exited while starting ({self._exit()})") from None
        except BaseException:
            self._end(process, grace=0.0 if self._stopped else 5.0)
            raise

    def call(self, jobs: list[_Job]) -> list[list[_Generated]]:
        problem = self.problem()
        if problem is not None or self.conn is None:
            raise BackendUnavailable(problem or f"{self.name} is not started")
        try:
            self.conn.send(jobs)
            if not self.conn.poll(self.call_timeout):
                # Hung: failing the batch frees its callers and their queue slots; the engine
                # is then replaced like one that died (`crashed`), and a job's chunk is released.
                self._failure = f"{self.name} did not answer within {self.call_timeout:g} s and is taken for hung"
                raise BackendUnavailable(self._failure)
            _, results = self.conn.recv()
        except (EOFError, OSError):
            self._failure = f"{self.name} exited unexpectedly ({self._exit()})"
            raise BackendUnavailable(self._failure) from None
        return results

    def crashed(self) -> bool:
        """The engine died on its own (not stopped, not already being replaced)."""
        return self.process is not None and not self._stopped and not self.restarting and self.problem() is not None

    def begin_restart(self) -> str:
        """Mark the worker as being replaced (on the event loop, so the next request
        already sees it); returns what happened to the engine, for `restart`."""
        crash = self._failure or f"{self.name} failed"
        self.restarting = True
        self._failure = f"{crash}; restarting it"
        return crash

    def restart(self, crash: str) -> None:
        """Start a fresh engine in place of one that died or hangs (runs on this worker's
        thread, so it never overlaps a call); the old process and its children are gone
        first, and until the new one is ready the worker takes no work."""
        try:
            if self.conn is not None:
                self.conn.close()
            self._end(self.process, grace=0.0)
            if not self._stopped:
                self.start()
        except Exception as exc:  # BackendUnavailable, or the spawn itself failing
            self.failed_restarts += 1
            self._failure = f"{crash}; the restart failed: {exc}"
        else:
            self.failed_restarts = 0
            self._failure = f"{self.name} is stopped" if self._stopped else None
        finally:
            self.restarting = False

    def stop(self) -> None:
        """Ask the worker to finish its batch and exit; force it after a timeout."""
        if self._stopped:
            return
        self._stopped = True
        if self._failure is None:
            self._failure = f"{self.name} is stopped"
        # Through the worker's thread, so the request follows the batch in flight
        # instead of interleaving with it on the pipe.
        self.thread.submit(self._ask_to_exit)
        self._end(self.process, grace=0.0 if self.restarting else STOP_TIMEOUT_S)  # a starting engine has no batch
        self.thread.shutdown(wait=True)  # returns: the pipe reads EOF once the worker is gone
        self._end(self.process, grace=STOP_TIMEOUT_S)  # an engine a restart started meanwhile
        if self.conn is not None:
            self.conn.close()

    @staticmethod
    def _end(process: multiprocessing.process.BaseProcess | None, grace: float) -> None:
        """Wait `grace` seconds for a clean exit, then terminate, then kill; whatever the
        engine process started itself (compile or tokenizer helpers) goes with it. A process
        whose spawn failed (no pid) has nothing to end."""
        if process is None or process.pid is None:
            return
        process.join(grace)
        children: list[psutil.Process] = []
        if process.is_alive():
            try:
                children = psutil.Process(process.pid).children(recursive=True)
            except psutil.Error:  # gone meanwhile
                pass
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(children, timeout=5)

    def _ask_to_exit(self) -> None:
        if self.conn is not None and self.process is not None and self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass

    def _exit(self) -> str:
        if self.process is None:
            return "never started"
        self.process.join(5)
        return f"exit code {self.process.exitcode}"


_Answer = tuple[_Generated, ItemResult]  # the raw outcome (for usage) and the caller's result


def _answer(worker: _Worker, jobs: list[_Job]) -> list[list[_Answer]]:
    """Run jobs on a worker and check each output against its schema. Runs on the
    worker's thread, so schema checks of large batches stay off the event loop."""
    try:
        raw = worker.call(jobs)
    except Exception as exc:  # a dead worker, or anything the pipe throws
        message = str(exc) if isinstance(exc, BackendUnavailable) else f"{worker.name}: {exc!r}"
        raw = [[_Generated(error=message)] * len(job.prompts) for job in jobs]
    return [[(g, _result(g, job)) for g in outcomes] for job, outcomes in zip(jobs, raw)]


def _result(generated: _Generated, job: _Job) -> ItemResult:
    if generated.error is not None:
        return ItemResult(error=generated.error, truncated=generated.truncated)
    try:
        if job.options:
            value = choice_answer(generated.text or "", generated.top_logprobs, job.options)
        else:
            assert job.schema is not None
            value = parse_output(generated.text or "", job.schema)
    except InvalidOutput as exc:
        cut = f" (generation stopped at max_tokens={job.max_tokens})" if generated.cut_off else ""
        return ItemResult(error=f"{exc}{cut}", truncated=generated.truncated)
    return ItemResult(value=value, truncated=generated.truncated, tokens=generated.tokens)


def _stop_workers(workers: list[_Worker]) -> None:
    """Last resort at garbage collection or interpreter exit (holds no processor ref)."""
    for worker in workers:
        worker.stop()


def _cpu_bind() -> str:
    """All cores this process may use, in VLLM_CPU_OMP_THREADS_BIND's syntax."""
    cores = sorted(os.sched_getaffinity(0))  # Linux, as vLLM's CPU build is
    if cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


def worker_env(gpu: int | None, visible_devices: Sequence[str] | None = None) -> dict[str, str]:
    """Environment a worker sets before importing vLLM.

    The engine runs inside the worker (no extra engine process: faster start, and
    vLLM's thread pinning stays in the worker). A GPU worker sees only its GPU: `gpu`
    indexes the devices the operator's CUDA_VISIBLE_DEVICES left visible (`visible_devices`),
    in CUDA's order, as torch numbers them. The CPU engine gets every core (vLLM's default
    keeps one idle, ~25% slower).
    """
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    if gpu is None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = _cpu_bind()
    else:
        env["CUDA_VISIBLE_DEVICES"] = visible_devices[gpu] if visible_devices is not None else str(gpu)
    return env


def llm_args(settings: EngineSettings, model: str, gpu: int | None) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM`: the one place the engine's settings are chosen
    (the benchmark builds its plain baseline from them too)."""
    args: dict[str, Any] = dict(
        model=model,
        max_model_len=settings.max_length,
        seed=settings.seed,
        enforce_eager=settings.enforce_eager if settings.enforce_eager is not None else gpu is None,
        enable_prefix_caching=True,
        # No free whitespace in JSON (an engine-wide setting in vLLM): a small model cannot
        # fill its token budget with newlines between the fields.
        structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
    )
    if settings.block_size:
        args["block_size"] = settings.block_size
    if gpu is None:
        args["kv_cache_memory_bytes"] = int(settings.kv_cache_gib * 2**30)
    else:
        args["gpu_memory_utilization"] = settings.gpu_memory
    return args


def _split(items: Sequence[Prompt], parts: int) -> list[tuple[int, int]]:
    """Contiguous (start, stop) ranges, as even as possible, so order is kept."""
    size, extra = divmod(len(items), parts)
    bounds, start = [], 0
    for k in range(parts):
        stop = start + size + (k < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


class LocalVLLMProcessor:
    """The in-process backend: vLLM engines in worker processes, one per GPU."""

    backend = "local"

    def __init__(self, settings: EngineSettings, *, worker_main: WorkerMain = _worker_main,
                 start_timeout: float = START_TIMEOUT_S, call_timeout: float = CALL_TIMEOUT_S) -> None:
        """`worker_main` and `start_timeout` exist so tests can run the process handling
        around a stand-in engine in seconds."""
        self.settings = settings
        self._worker_main, self._start_timeout, self._call_timeout = worker_main, start_timeout, call_timeout
        self.model = model_name(settings.llm)
        self.usage = Usage()
        self._workers: list[_Worker] = []
        self._finalizer: weakref.finalize | None = None

    async def start(self) -> None:
        """Start every engine (in parallel); raise `BackendUnavailable` if any fails."""
        if self._workers:
            return
        loop = asyncio.get_running_loop()
        model = resolve_llm(self.settings.llm, self.settings.cache_dir)
        gpus: list[int | None] = list(self.settings.gpu_list) or [None]
        workers = [_Worker(self._engine_config(k, model, gpu), self._worker_main, self._start_timeout,
                           self._call_timeout)
                   for k, gpu in enumerate(gpus)]
        self._workers = workers
        # Last resort if close() is never awaited: stop the workers when this object is
        # collected, or at exit. Registered after multiprocessing's own exit hook (which
        # would wait forever on workers still listening), so it runs before it.
        self._finalizer = weakref.finalize(self, _stop_workers, workers)
        self._finalizer.atexit = False
        atexit.register(self._finalizer)
        starts = [loop.run_in_executor(w.thread, w.start) for w in workers]
        outcomes = await asyncio.gather(*starts, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            await self.close()
            self._workers = []
            error = failures[0]
            if isinstance(error, BackendUnavailable):
                raise error
            raise BackendUnavailable(f"engine start failed: {error!r}") from error

    def _engine_config(self, index: int, model: str, gpu: int | None) -> _EngineConfig:
        return _EngineConfig(
            name=f"engine worker {index} ({'CPU' if gpu is None else f'GPU {gpu}'})",
            env=worker_env(gpu, self.settings.visible_devices),
            llm_args=llm_args(self.settings, model, gpu),
            temperature=self.settings.temperature,
            seed=self.settings.seed,
        )

    async def process_with_schema(
        self, prompts: Sequence[Prompt], schema: JSONSchema, *, max_tokens: int = 256
    ) -> list[ItemResult]:
        """One result per prompt, in order; failures are per item, never raised."""
        return await self._process(prompts, lambda part: _Job(part, schema, max_tokens))

    async def process_choice(self, prompts: Sequence[Prompt], options: Sequence[str]) -> list[ItemResult]:
        """Per prompt `{"choice", "probabilities"}`: one token under a choice grammar, with
        the top log-probabilities of that token read back."""
        return await self._process(prompts, lambda part: _Job(part, None, 1, tuple(options)))

    async def _process(self, prompts: Sequence[Prompt], job: Callable[[tuple[Prompt, ...]], _Job]) -> list[ItemResult]:
        self._revive()
        problems = [w.problem() for w in self._workers]
        live = [w for w, problem in zip(self._workers, problems) if problem is None]
        if not live:
            reason = next(filter(None, problems), "the local engine is not started")
            self.usage.errors += len(prompts)
            return [ItemResult.failure(reason)] * len(prompts)
        ranges = [(w, a, b) for w, (a, b) in zip(live, _split(prompts, len(live))) if b > a]
        chunks = await asyncio.gather(
            *(self._submit(w, job(tuple(prompts[a:b]))) for w, a, b in ranges)
        )
        results: list[ItemResult] = []
        for chunk in chunks:
            for generated, result in chunk:
                self._count(generated, result)
                results.append(result)
        return results

    async def _submit(self, worker: _Worker, job: _Job) -> list[_Answer]:
        """Queue a job on a worker; jobs queued while it is busy share its next batch."""
        future: asyncio.Future[list[_Answer]] = asyncio.get_running_loop().create_future()
        worker.pending.append((job, future))
        if worker.drainer is None or worker.drainer.done():
            worker.drainer = asyncio.create_task(self._drain(worker))
        return await future

    async def _drain(self, worker: _Worker) -> None:
        """Run what is pending as one batch, again until nothing is. Whatever goes wrong
        with a batch, every caller in it gets an answer: per-item errors, never a hang."""
        loop = asyncio.get_running_loop()
        while worker.pending:
            batch, worker.pending = worker.pending, []
            jobs = [job for job, _ in batch]
            try:
                answers = await loop.run_in_executor(worker.thread, _answer, worker, jobs)
            except BaseException as exc:  # noqa: BLE001 - a bug or a cancel: no caller may wait forever
                failed = _Generated(error=f"{worker.name}: the batch failed ({type(exc).__name__}: {exc})")
                answers = [[(failed, ItemResult.failure(failed.error or ""))] * len(job.prompts) for job in jobs]
                if not isinstance(exc, Exception):
                    self._settle(batch, answers)
                    raise
            self._settle(batch, answers)
        self._revive()  # if the engine died in that batch, start its replacement now

    @staticmethod
    def _settle(batch: list[tuple[_Job, asyncio.Future[list[_Answer]]]], answers: list[list[_Answer]]) -> None:
        for (_, future), answer in zip(batch, answers):
            if not future.done():
                future.set_result(answer)

    def _count(self, generated: _Generated, result: ItemResult) -> None:
        usage = self.usage
        if generated.text is not None:  # the engine ran it
            usage.llm_calls += 1
            usage.prompt_tokens += generated.prompt_tokens
            usage.completion_tokens += generated.completion_tokens
            usage.cached_prompt_tokens += generated.cached_tokens
        usage.errors += not result.ok
        usage.truncations += result.truncated

    def _revive(self) -> None:
        """Start a replacement for each engine that died, in the background. Its share of
        the work goes to the live engines meanwhile; with none live, items fail fast."""
        loop = asyncio.get_running_loop()
        for worker in self._workers:
            if worker.crashed() and worker.failed_restarts < MAX_RESTARTS:
                loop.run_in_executor(worker.thread, worker.restart, worker.begin_restart())

    async def health(self, *, probe: bool = True) -> Health:
        """Worker processes alive, either way: seeing that is as cheap as asking."""
        self._revive()
        alive = sum(w.problem() is None for w in self._workers)
        return Health(
            ok=bool(self._workers) and alive == len(self._workers),
            backend=self.backend,
            model=self.model,
            detail={"workers": alive, "gpus": list(self.settings.gpu_list)},
        )

    async def close(self) -> None:
        """Stop every worker cleanly (each finishes its batch in flight first)."""
        if self._finalizer is None:
            return
        atexit.unregister(self._finalizer)
        self._finalizer.detach()
        self._finalizer = None
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, w.stop) for w in self._workers))
