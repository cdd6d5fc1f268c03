"""Fair shares of an engine between requesters: one person's file never holds a whole engine.

An engine batches whatever it holds, and answers each prompt in about the same number of
steps, so what decides how long a small request waits is how many prompts are ahead of it.
`FairShare` keeps at most `capacity` prompts in the engine and, when more wait, hands each
freed place to the waiting requester that holds the fewest places (ties in turn, round
robin), not to the oldest prompt: a 1-text request's next question goes in at the next free
place, however many a 2,000-text request has queued.

Who is asking travels in a context variable, `requester`: the service sets it per text (to
the request the text came in, or the job it belongs to), and every task the text's work
starts inherits it, down to the backend's call.
"""
from __future__ import annotations

import asyncio
from collections import Counter, deque
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import AsyncIterator

requester: ContextVar[str] = ContextVar("requester", default="")


class FairShare:
    """At most `capacity` places in use at once; a freed place goes to the waiting requester
    that holds the fewest, ties in turn (round robin)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_use = 0
        self._held: Counter[str] = Counter()  # places in use, per requester
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}  # in turn order: the next to serve first

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    @asynccontextmanager
    async def place(self, who: str | None = None) -> AsyncIterator[int]:
        """Hold one place while the block runs; wait for one (in `who`'s turn) when all are taken.
        `who` defaults to the current `requester`. Yields how many places `who` held besides
        this one when it got it: an engine that orders its own queue can put the smallest first."""
        who = who if who is not None else requester.get()
        if self.in_use < self.capacity and not self._queues:
            self.in_use += 1
            self._held[who] += 1
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queues.setdefault(who, deque()).append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # the place had been handed over: pass it on
                    self._release(who)
                raise
        try:
            yield self._held[who] - 1
        finally:
            self._release(who)

    def _release(self, who: str) -> None:
        """Hand `who`'s freed place to the waiting requester holding the fewest, else keep it free."""
        self._held[who] -= 1
        if not self._held[who]:
            del self._held[who]
        while self._queues:
            chosen = min(self._queues, key=self._held.__getitem__)  # the first such in turn order
            queue = self._queues.pop(chosen)
            turn = queue.popleft()
            if queue:
                self._queues[chosen] = queue  # to the back of the line
            if not turn.done():  # a waiter that was cancelled gave up its turn
                self._held[chosen] += 1
                turn.set_result(None)
                return
        self.in_use -= 1
