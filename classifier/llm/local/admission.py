"""Which waiting requests join an engine's running batch, and which running ones go back.

Urgent requests (a small request someone waits for, `llm.fairness`) join at the next step.
The others join `BULK_PER_STEP` at a time, so the engine's own queue never holds more than
a step's prefill: an urgent request that comes next waits for one step at most, not for a
file's backlog. While an urgent request runs, the others keep to `SHARED` in the engine
(those admitted first, the furthest along); the rest go back to the front of the queue, so
the urgent request's steps stay short. A request sent back loses only the tokens it had
written: its prompt stays in the engine's prefix cache. On a GPU a step costs about the same
with 8 prompts or 64; on a CPU it grows with every prompt in it (docs/benchmarks.md, section 9).
"""
from __future__ import annotations

from collections import deque
from typing import Sequence

from .messages import Request

BULK_PER_STEP = 4
SHARED = 2


class Admission:
    """The engine's queue: urgent requests, then the others in the order they came."""

    def __init__(self) -> None:
        self.urgent: deque[Request] = deque()
        self.bulk: deque[Request] = deque()

    def __len__(self) -> int:
        return len(self.urgent) + len(self.bulk)

    def queue(self, requests: Sequence[Request]) -> None:
        for request in requests:
            (self.urgent if request.urgent else self.bulk).append(request)

    def plan(self, running: Sequence[Request]) -> tuple[list[Request], list[int]]:
        """Before a step, given the running requests in the order admitted: the requests to add
        now, and the positions in `running` of those to send back (they are queued again)."""
        arrived = [self.urgent.popleft() for _ in range(len(self.urgent))]
        others = [k for k, request in enumerate(running) if not request.urgent]
        back = others[SHARED:] if arrived else []
        for k in reversed(back):
            self.bulk.appendleft(running[k])
        urgent = len(arrived) + len(running) - len(others)
        room = SHARED - (len(others) - len(back)) if urgent else BULK_PER_STEP
        return arrived + [self.bulk.popleft() for _ in range(min(len(self.bulk), max(0, room)))], back
