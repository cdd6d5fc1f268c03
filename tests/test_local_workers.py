"""LocalVLLMProcessor's process handling around stand-in engines (tests/fake_engine.py):
every caller answered when a batch fails, restarts that leave no process behind, the
restart limit, close() during a restart, a start that times out, and --batch-size."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest

from classifier.llm.local import processor as local
from classifier.llm.base import Prompt, process_in_batches
from classifier.llm.errors import BackendUnavailable
from classifier.llm.local import MAX_RESTARTS, LocalVLLMProcessor
from classifier.settings import EngineSettings

from . import fake_engine
from .fault_server import ECHO_SCHEMA


def prompts(*comments: str) -> list[Prompt]:
    return [Prompt("Echo.", c) for c in comments]


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Set what each start of the stand-in engine does; returns the file counting starts."""
    state = tmp_path / "starts"

    def set_plan(*steps: str) -> Path:
        monkeypatch.setenv("FAKE_ENGINE_STATE", str(state))
        monkeypatch.setenv("FAKE_ENGINE_PLAN", ",".join(steps))
        return state

    return set_plan


def processor(**kwargs) -> LocalVLLMProcessor:
    return LocalVLLMProcessor(EngineSettings(llm="stand-in"), worker_main=fake_engine.main, **kwargs)


async def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_an_exception_reading_answers_answers_every_caller(plan, monkeypatch) -> None:
    plan("ready")
    proc = processor()
    await proc.start()
    try:
        real = local._result

        def broken(generated, request):
            raise RuntimeError("parser bug")

        monkeypatch.setattr(local, "_result", broken)
        calls = [proc.process_with_schema(prompts(f"c{k}", "d"), ECHO_SCHEMA) for k in range(3)]
        answered = await asyncio.wait_for(asyncio.gather(*calls), timeout=10)
        assert all(not r.ok and "the answer could not be read (RuntimeError: parser bug)" in r.error
                   for results in answered for r in results)
        monkeypatch.setattr(local, "_result", real)
        [again] = await proc.process_with_schema(prompts("after"), ECHO_SCHEMA)
        assert again.value["echo"] == "after", "the worker keeps serving"
    finally:
        await proc.close()


async def test_crashed_engine_restarts_up_to_the_limit_then_stays_down(plan) -> None:
    starts = plan("crash", "fail")
    proc = processor()
    await proc.start()
    [worker] = proc._workers
    first = worker.process
    try:
        [crashed] = await proc.process_with_schema(prompts("boom"), ECHO_SCHEMA)
        assert not crashed.ok and "exited unexpectedly" in crashed.error
        for _ in range(MAX_RESTARTS + 2):  # each call sees the failure and tries to revive
            await wait_until(lambda: not worker.restarting)
            await proc.process_with_schema(prompts("again"), ECHO_SCHEMA)
        await wait_until(lambda: not worker.restarting)
        assert worker.failed_restarts == MAX_RESTARTS
        assert int(starts.read_text()) == 1 + MAX_RESTARTS, "no start past the limit"
        [down] = await proc.process_with_schema(prompts("late"), ECHO_SCHEMA)
        assert "restart failed" in down.error and "start 4 refused" in down.error
        assert not first.is_alive() and not worker.process.is_alive()
    finally:
        await proc.close()


async def replaced_after(hang) -> None:  # noqa: ANN001 - `hang(proc)` makes the engine hang
    """Start on an engine that hangs once, run `hang`, and see the hung engine gone and its
    replacement serving."""
    proc = processor(call_timeout=2)
    await proc.start()
    [worker] = proc._workers
    hung = worker.process
    try:
        await hang(proc)
        await wait_until(lambda: not worker.restarting and worker.problem() is None, timeout=30)
        assert not hung.is_alive(), "the hung engine is gone"
        for _ in range(3):  # on a loaded machine the new engine's first answer may miss the 2 s bound
            [again] = await proc.process_with_schema(prompts("after"), ECHO_SCHEMA)
            if again.ok:
                break
        assert again.ok and again.value["echo"] == "after", f"the replacement serves: {again.error}"
    finally:
        await proc.close()


async def test_a_hung_engine_fails_its_batch_after_the_deadline_then_is_replaced(plan) -> None:
    plan("hang", "ready")

    async def hang(proc: LocalVLLMProcessor) -> None:
        began = time.monotonic()
        answers = await asyncio.wait_for(proc.process_with_schema(prompts("a", "b"), ECHO_SCHEMA), timeout=30)
        assert time.monotonic() - began < 20
        assert all(not r.ok and "did not answer within 2 s and is taken for hung" in r.error for r in answers)

    await replaced_after(hang)


async def test_an_engine_that_stops_reading_its_pipe_is_replaced_though_a_write_is_stuck(plan) -> None:
    plan("hang", "ready")

    async def hang(proc: LocalVLLMProcessor) -> None:
        first = asyncio.ensure_future(proc.process_with_schema(prompts("a"), ECHO_SCHEMA))
        await asyncio.sleep(0.5)  # the engine took it and reads nothing more
        flood = prompts(*(f"{k} " + "x" * 100_000 for k in range(20)))  # 2 MB: far more than a pipe holds
        stuck = asyncio.ensure_future(proc.process_with_schema(flood, ECHO_SCHEMA))
        answers = await asyncio.wait_for(asyncio.gather(first, stuck), timeout=30)
        assert all(not r.ok and "taken for hung" in r.error for part in answers for r in part)

    await replaced_after(hang)  # ending the hung engine also freed the stuck write


async def test_close_during_a_restart_returns_at_once_and_leaves_no_process(plan) -> None:
    starts = plan("crash", "slow")
    proc = processor()
    await proc.start()
    [worker] = proc._workers
    await proc.process_with_schema(prompts("boom"), ECHO_SCHEMA)
    await proc.health()  # notices the crash and starts the replacement
    child_file = Path(str(starts) + ".child")
    await wait_until(child_file.exists)
    replacement, grandchild = worker.process, int(child_file.read_text())
    assert worker.restarting and replacement.is_alive()
    began = time.monotonic()
    await proc.close()
    assert time.monotonic() - began < 10, "close() did not wait for an engine load"
    assert not replacement.is_alive() and gone(grandchild)


async def test_a_spawn_that_fails_is_reported_and_close_still_works(plan, monkeypatch) -> None:
    plan("ready")

    def refuse(self) -> None:
        raise RuntimeError("spawn refused (an engine built outside if __name__ == '__main__')")

    monkeypatch.setattr("multiprocessing.context.SpawnProcess.start", refuse)
    proc = processor()
    with pytest.raises(BackendUnavailable, match="engine start failed: RuntimeError..spawn refused"):
        await proc.start()
    await proc.close()  # used to raise AssertionError: can only join a started process


async def test_a_start_that_times_out_kills_what_it_started(plan) -> None:
    starts = plan("slow")
    proc = processor(start_timeout=3)
    with pytest.raises(BackendUnavailable, match="did not start within 3 s"):
        await proc.start()
    grandchild = int(Path(str(starts) + ".child").read_text())
    assert gone(grandchild)
    assert not any(p.is_alive() for p in [w.process for w in proc._workers] if p is not None)


async def test_batch_size_bounds_what_one_backend_call_carries(plan) -> None:
    plan("ready")
    proc = processor()
    await proc.start()
    try:
        results = await process_in_batches(proc, prompts(*map(str, range(10))), ECHO_SCHEMA, max_tokens=8,
                                           batch_size=4)
    finally:
        await proc.close()
    assert [r.value["echo"] for r in results] == list(map(str, range(10)))
    assert [r.value["batch"] for r in results] == [4] * 8 + [2] * 2, "chunks of 4, one after the other"
