"""Stand-in engine processes for `LocalVLLMProcessor`'s process handling (no vLLM): each is a
worker main speaking the real worker's pipe protocol, spawned exactly as an engine is.

They read their instructions from the environment the worker inherits:
`FAKE_ENGINE_STATE` names a file counting starts; `FAKE_ENGINE_PLAN` says, per start (1, 2,
...), what that start does: `ready` (answer every batch with an echo that also reports the
batch's size), `crash` (ready, then die on the first batch), `fail` (refuse to start),
`slow` (never get ready, after starting a grandchild process whose pid goes to
`FAKE_ENGINE_STATE.child`), `hang` (ready, then never answer). Starts past the plan repeat its last entry.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from multiprocessing.connection import Connection
from pathlib import Path

from classifier.llm.local.messages import EngineConfig, Generated, Request


def _start_number() -> tuple[int, str]:
    state = Path(os.environ["FAKE_ENGINE_STATE"])
    count = int(state.read_text() or 0) + 1 if state.exists() else 1
    state.write_text(str(count))
    plan = os.environ.get("FAKE_ENGINE_PLAN", "ready").split(",")
    return count, plan[min(count, len(plan)) - 1]


def main(conn: Connection, config: EngineConfig) -> None:
    count, what = _start_number()
    if what == "fail":
        conn.send(("error", f"start {count} refused"))
        return
    if what == "slow":
        child = subprocess.Popen(["sleep", "600"])
        Path(os.environ["FAKE_ENGINE_STATE"] + ".child").write_text(str(child.pid))
        time.sleep(600)
        return
    conn.send(("ready", None))
    while True:
        try:
            requests: list[Request] | None = conn.recv()
        except (EOFError, OSError):
            return
        if requests is None:
            return
        if what == "crash":
            os._exit(9)
        if what == "hang":
            time.sleep(600)
        conn.send([(r.id, Generated(text=json.dumps({"echo": r.prompt.comment, "batch": len(requests)}),
                                    prompt_tokens=1, completion_tokens=1)) for r in requests])
