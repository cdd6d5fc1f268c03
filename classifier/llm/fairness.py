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
import heapq
import itertools
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
    freed place goes to the waiting requester that holds the fewest, ties in turn (round robin).

    Waiting requesters sit in two heaps (small ones, the others) keyed by (places held, turn):
    an admission costs a logarithm of the waiting requesters, not a scan of them. An entry
    whose requester's key changed since is stale and skipped (its version is not current)."""

    def __init__(self, capacity: int, shared: int | None = None) -> None:
        if capacity < 1 or (shared is not None and shared < 1):
            raise ValueError("capacity and shared must be at least 1")
        self.capacity, self.shared = capacity, shared
        self.in_use = 0
        self.waiting = 0  # turns asked for and not yet handed out
        self._small_held = 0  # places in use by small requesters
        self._held: Counter[Requester] = Counter()  # places in use, per requester
        self._queues: dict[Requester, deque[asyncio.Future[None]]] = {}  # the waiting requesters' turns
        self._turn: dict[Requester, tuple[int, int]] = {}  # a waiting requester's (place in line, version)
        self._heaps: dict[bool, list[tuple[int, int, int, Requester]]] = {True: [], False: []}
        self._counter = itertools.count()

    def holding(self) -> dict[str, int]:
        """Places in use, per requester's name."""
        return {who.name: held for who, held in self._held.items()}

    @asynccontextmanager
    async def place(self, who: Requester | None = None) -> AsyncIterator[None]:
        """Hold one place while the block runs; wait for one (in `who`'s turn) when none may
        be taken. `who` defaults to the current `requester`."""
        who = who if who is not None else requester.get()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if who not in self._queues:
            self._queues[who] = deque()
            self._file(who, next(self._counter))  # at the back of the line
        self._queues[who].append(turn)
        self.waiting += 1
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

    def _file(self, who: Requester, line: int) -> None:
        """(Re)file a waiting requester under its places held now, at place `line` in the line."""
        version = next(self._counter)
        self._turn[who] = (line, version)
        heap = self._heaps[who.small]
        heapq.heappush(heap, (self._held[who], line, version, who))
        if len(heap) > 2 * len(self._queues) + 16:  # stale entries: rebuilt now and then, amortised
            heap[:] = [entry for entry in heap if self._turn.get(entry[3], (0, -1))[1] == entry[2]]
            heapq.heapify(heap)

    def _release(self, who: Requester) -> None:
        self.in_use -= 1
        self._small_held -= who.small
        self._held[who] -= 1
        if not self._held[who]:
            del self._held[who]
        if who in self._queues:  # it holds fewer now: its key changes, its place in line does not
            self._file(who, self._turn[who][0])
        self._admit()

    def _top(self, small: bool) -> tuple[int, int, int, Requester] | None:
        heap = self._heaps[small]
        while heap and self._turn.get(heap[0][3], (0, -1))[1] != heap[0][2]:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def _admit(self) -> None:
        """Hand out places while there are some: to the waiting requester holding the fewest
        of those that may take one, each served going to the back of the line."""
        while True:
            tops = [top for small in (True, False) if self._may_take(small) and (top := self._top(small))]
            if not tops:
                return
            *_, chosen = min(tops, key=lambda entry: entry[:2])
            heapq.heappop(self._heaps[chosen.small])
            queue = self._queues[chosen]
            turn = queue.popleft()
            self.waiting -= 1
            if not turn.done():  # a waiter that was cancelled gave up its turn
                self.in_use += 1
                self._small_held += chosen.small
                self._held[chosen] += 1
                turn.set_result(None)
            if queue:
                self._file(chosen, next(self._counter))  # to the back of the line
            else:
                del self._queues[chosen], self._turn[chosen]

    def _may_take(self, small: bool) -> bool:
        """A free place, or for a small requester one of those kept beyond `capacity`; for the
        others, while a small requester holds one, only below `shared` together."""
        if small:
            return self.in_use < self.capacity or self._small_held < RESERVED
        if self._small_held and self.shared is not None and self.in_use - self._small_held >= self.shared:
            return False
        return self.in_use < self.capacity
