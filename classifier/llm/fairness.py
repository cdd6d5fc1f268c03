"""Fair shares of an engine between requesters: one person's file never holds a whole engine.

An engine batches whatever it holds, so what decides how long a small request takes is how
many prompts are ahead of it. `FairShare` keeps at most `capacity` prompts in the backend;
when more wait, a freed place goes to the waiting requester that holds the fewest (ties in
turn, round robin), never simply to the oldest prompt; and `RESERVED` places beyond
`capacity` are kept for small requesters (a comment or two), so a single comment never
waits for a place behind a file. With `shared`, while a small requester holds a place the
others together take new places only below `shared`, so what runs beside the small one
shrinks as their answers come in (for servers, whose queues the client cannot reorder); the
local engine goes further and runs a small requester's prompts before the others'
(`local.engine`).

Who is asking travels in a context variable, `requester`: the service sets it per text (the
request the text came in, or the job it belongs to), and every task the text's work starts
inherits it, down to the backend's call.
"""
from __future__ import annotations

import asyncio
from collections import Counter, deque
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import AsyncIterator

RESERVED = 4  # places beyond the capacity for small requesters together (a comment's questions at once)


@dataclass(frozen=True)
class Requester:
    """Who a prompt is for: a request, a job. `small`: a comment or two, which people wait for.
    `owner`: the API key (digest) whose labels answer it, for a job's lines."""

    name: str = ""
    small: bool = False
    owner: str = ""


requester: ContextVar[Requester] = ContextVar("requester", default=Requester())


class FairShare:
    """At most `capacity` places in use at once, and `RESERVED` more for small requesters; a
    freed place goes to the waiting requester that holds the fewest, ties in turn (round robin)."""

    def __init__(self, capacity: int, shared: int | None = None) -> None:
        if capacity < 1 or (shared is not None and shared < 1):
            raise ValueError("capacity and shared must be at least 1")
        self.capacity, self.shared = capacity, shared
        self.in_use = 0
        self._held: Counter[Requester] = Counter()  # places in use, per requester
        self._queues: dict[Requester, deque[asyncio.Future[None]]] = {}  # in turn order: the next first

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def holding(self) -> dict[str, int]:
        """Places in use, per requester's name."""
        return {who.name: held for who, held in self._held.items()}

    @asynccontextmanager
    async def place(self, who: Requester | None = None) -> AsyncIterator[None]:
        """Hold one place while the block runs; wait for one (in `who`'s turn) when none may
        be taken. `who` defaults to the current `requester`."""
        who = who if who is not None else requester.get()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(who, deque()).append(turn)
        self._admit()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # the place had been handed over: pass it on
                self._release(who)
            raise
        try:
            yield
        finally:
            self._release(who)

    def _release(self, who: Requester) -> None:
        self.in_use -= 1
        self._held[who] -= 1
        if not self._held[who]:
            del self._held[who]
        self._admit()

    def _admit(self) -> None:
        """Hand out places while there are some: to the waiting requester holding the fewest
        of those that may take one, each served going to the back of the line."""
        while self._queues:
            allowed = [who for who in self._queues if self._may_take(who)]
            if not allowed:
                return
            chosen = min(allowed, key=self._held.__getitem__)  # the first such in turn order
            queue = self._queues.pop(chosen)
            turn = queue.popleft()
            if queue:
                self._queues[chosen] = queue  # to the back of the line
            if not turn.done():  # a waiter that was cancelled gave up its turn
                self.in_use += 1
                self._held[chosen] += 1
                turn.set_result(None)

    def _may_take(self, who: Requester) -> bool:
        """A free place, or for a small requester one of those kept beyond `capacity`; for the
        others, while a small requester holds one, only below `shared` together."""
        small = sum(held for other, held in self._held.items() if other.small)
        if who.small:
            return self.in_use < self.capacity or small < RESERVED
        if small and self.shared is not None and self.in_use - small >= self.shared:
            return False
        return self.in_use < self.capacity
