"""The parent side of one engine process: spawning it, talking to it, replacing it.

The worker is started with the spawn method, its environment (`CUDA_VISIBLE_DEVICES`, the
CPU engine's knobs) set before vLLM is imported. Requests go to it from this worker's writer
thread (a pipe write can block; the event loop never does), coalesced per loop tick into
one message; starts and restarts run on a thread of their own, so an engine that stops
reading its pipe (a write blocked for good) is still replaced, and ending it frees the write; answers come back on a reader thread, one message per engine step, and
resolve their callers' futures on the event loop. An engine that dies or stops answering
fails every request it holds at once; `LocalVLLMProcessor` then replaces it.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Callable

import psutil

from ..errors import BackendUnavailable
from .messages import EngineConfig, Finished, Generated, Request

START_TIMEOUT_S = 900.0  # engine start, model load included; ~15-50 s on CPU
START_POLL_S = 0.5  # how often a start checks for its engine's answer, a timeout and close()
STOP_TIMEOUT_S = 30.0  # a clean stop waits for the requests in flight
READ_POLL_S = 0.5  # how often the reader looks at the clock while the engine is silent
# The longest the engine may hold requests without finishing any before it is taken for hung:
# a full batch of long answers on the CPU engine takes minutes, a hung engine forever.
CALL_TIMEOUT_S = 1800.0

WorkerMain = Callable[[Connection, EngineConfig], None]


class Worker:
    """One engine process, the parent's end of its pipe, and the requests it holds.

    The pipe writes run on the writer thread (`thread`), `start` and `restart` on the
    life-cycle thread (`lifecycle`): a write stuck on a full pipe never holds up the restart
    that ends it. `submit` and the futures live on the event loop.
    """

    def __init__(self, config: EngineConfig, main: WorkerMain, on_down: Callable[[], None],
                 start_timeout: float = START_TIMEOUT_S, call_timeout: float = CALL_TIMEOUT_S) -> None:
        self.config, self.main, self.on_down = config, main, on_down
        # The loop of the latest submit, where answers are delivered: a processor is not tied
        # to the loop that started it.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.start_timeout, self.call_timeout = start_timeout, call_timeout
        self.name = config.name
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-writer")
        self.lifecycle = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-lifecycle")
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: Connection | None = None
        self._failure: str | None = None
        self._stopped = False
        self.restarting = False  # a replacement engine is starting
        self.failed_restarts = 0  # in a row; past MAX_RESTARTS the worker stays down
        self.waiting: dict[int, asyncio.Future[Generated]] = {}  # request id -> its caller
        self._outbox: list[Request] = []
        self._progress = time.monotonic()  # the engine's last sign of work, for the hung check

    @property
    def load(self) -> int:
        """Requests this engine holds: where the next one goes is the least loaded engine."""
        return len(self.waiting)

    def problem(self) -> str | None:
        """None while the worker can take work, else why not (a crash is noticed here)."""
        if self._failure is None:
            if self.process is None:
                return f"{self.name} is not started"
            if not self.process.is_alive():
                self._failure = f"{self.name} exited unexpectedly ({self._exit()})"
        return self._failure

    # ------------------------------------------------------------------ requests (event loop)

    def submit(self, request: Request) -> asyncio.Future[Generated]:
        """The future of `request`'s outcome; requests submitted in one loop tick travel together."""
        self.loop = loop = asyncio.get_running_loop()
        future: asyncio.Future[Generated] = loop.create_future()
        if not self.waiting:
            self._progress = time.monotonic()
        self.waiting[request.id] = future
        if not self._outbox:
            loop.call_soon(self._flush)
        self._outbox.append(request)
        return future

    def _flush(self) -> None:
        batch, self._outbox = self._outbox, []
        self.thread.submit(self._send, batch)

    def _send(self, batch: list[Request]) -> None:
        """On the worker's thread: one message to the engine; a broken pipe is the reader's to report."""
        conn = self.conn
        if conn is None or self._failure is not None:
            self._call(self._fail, [r.id for r in batch], self._failure or f"{self.name} is not started")
            return
        try:
            conn.send(batch)
        except (OSError, ValueError):  # the engine is gone: its reader fails what it held
            pass

    def _finished(self, finished: Finished) -> None:
        for request_id, generated in finished:
            future = self.waiting.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result(generated)

    def _fail(self, ids: list[int] | None, message: str) -> None:
        """Answer the requests `ids` (all held, when None) with `message`."""
        for request_id in list(self.waiting) if ids is None else ids:
            self._finished([(request_id, Generated(error=message))])

    # ------------------------------------------------------------------ the reader thread

    def _read(self, conn: Connection) -> None:
        """Deliver each message from the engine until its pipe ends; then, unless the worker
        was stopped or replaced meanwhile, fail what it held and tell the processor."""
        failure = None
        while failure is None:
            try:
                if conn.poll(READ_POLL_S):
                    finished = conn.recv()
                    self._progress = time.monotonic()
                    self._call(self._finished, finished)
                elif self.waiting and time.monotonic() - self._progress > self.call_timeout:
                    failure = f"{self.name} did not answer within {self.call_timeout:g} s and is taken for hung"
            except (EOFError, OSError):
                failure = f"{self.name} exited unexpectedly ({self._exit()})"
        if conn is self.conn and not self._stopped and not self.restarting:
            self._failure = failure
            self._call(self._down, failure)
        else:
            self._call(self._fail, None, self._failure or failure)

    def _down(self, failure: str) -> None:
        self._fail(None, failure)
        self.on_down()

    def _call(self, function: Callable[..., None], *args: object) -> None:
        if self.loop is None:  # nothing was ever submitted: nobody waits
            return
        try:
            self.loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    # ------------------------------------------------------------------ life cycle (its own thread)

    def start(self) -> None:
        """Spawn the engine process and wait for its "ready"; on any failure (its error, a
        timeout, `stop()` meanwhile) the process and its children are gone when this raises."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
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
        self.conn = parent
        threading.Thread(target=self._read, args=(parent,), name=f"{self.name} reader", daemon=True).start()

    def crashed(self) -> bool:
        """The engine died or hangs on its own (not stopped, not already being replaced)."""
        return self.process is not None and not self._stopped and not self.restarting and self.problem() is not None

    def begin_restart(self) -> str:
        """Mark the worker as being replaced (on the event loop, so the next request
        already sees it); returns what happened to the engine, for `restart`."""
        crash = self._failure or f"{self.name} failed"
        self.restarting = True
        self._failure = f"{crash}; restarting it"
        return crash

    def restart(self, crash: str) -> None:
        """Start a fresh engine in place of one that died or hangs (on the life-cycle thread);
        the old process and its children are gone first (which ends a write blocked on its
        pipe), and until the new one is ready the worker takes no work."""
        try:
            self._end(self.process, grace=0.0)
            if self.conn is not None:
                self.conn.close()
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
        """Ask the engine to finish the requests it holds and exit; force it after a timeout."""
        if self._stopped:
            return
        self._stopped = True
        if self._failure is None:
            self._failure = f"{self.name} is stopped"
        # Through the worker's thread, so the request follows every message sent before it.
        self.thread.submit(self._ask_to_exit)
        self._end(self.process, grace=0.0 if self.restarting else STOP_TIMEOUT_S)  # a starting engine has no work
        self.thread.shutdown(wait=True)
        self.lifecycle.shutdown(wait=True)  # a restart under way sees the stop and gives up
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
