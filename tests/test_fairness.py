"""FairShare: places handed round robin between requesters, never lost to a cancelled waiter."""
from __future__ import annotations

import asyncio

import pytest

from classifier.llm.fairness import FairShare, requester


async def test_a_small_requester_gets_the_next_free_place_before_a_big_ones_queue() -> None:
    share, order, release = FairShare(2), [], asyncio.Event()

    async def prompt(who: str, k: int) -> None:
        async with share.place(who):
            order.append(f"{who}{k}")
            await release.wait()

    big = [asyncio.create_task(prompt("big", k)) for k in range(8)]
    await asyncio.sleep(0)
    small = asyncio.create_task(prompt("small", 0))
    await asyncio.sleep(0)
    assert order == ["big0", "big1"] and share.waiting == 7
    release.set()
    await asyncio.gather(*big, small)
    assert order.index("small0") == 2, order  # the first place freed, not the ninth
    assert share.in_use == 0 and share.waiting == 0


async def test_turns_alternate_between_requesters_whatever_they_queued() -> None:
    share, order = FairShare(1), []
    gate = asyncio.Event()

    async def prompt(who: str, k: int) -> None:
        async with share.place(who):
            order.append(who)
            await gate.wait()

    first = asyncio.create_task(prompt("a", -1))  # holds the only place while the others queue
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(prompt("a", k)) for k in range(4)] + [asyncio.create_task(prompt("b", k))
                                                                         for k in range(2)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *tasks)
    assert order == ["a", "a", "b", "a", "b", "a", "a"]


async def test_the_requester_comes_from_the_context_when_not_named() -> None:
    share, order = FairShare(1), []
    gate = asyncio.Event()

    async def prompt(who: str) -> None:
        requester.set(who)
        async with share.place():
            order.append(who)
            await gate.wait()

    tasks = [asyncio.create_task(prompt(w)) for w in ("a", "a", "a", "b")]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "a", "b", "a"]


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    share = FairShare(1)
    gate = asyncio.Event()

    async def hold(who: str) -> str:
        async with share.place(who):
            await gate.wait()
        return who

    first = asyncio.create_task(hold("a"))
    await asyncio.sleep(0)
    gone, kept = asyncio.create_task(hold("b")), asyncio.create_task(hold("c"))
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, kept), timeout=5) == ["a", "c"]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert share.in_use == 0 and share.waiting == 0
