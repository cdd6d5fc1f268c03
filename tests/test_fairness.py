"""FairShare: places handed to the requester holding fewest, then in turn; places beyond the
capacity for small requesters; never a place lost to a cancelled waiter."""
from __future__ import annotations

import asyncio

import pytest

from classifier.llm.fairness import RESERVED, FairShare, Requester, requester
from tests.scripted import until

A, B = Requester("a"), Requester("b")


async def test_turns_go_to_the_requester_holding_fewest_then_round_robin() -> None:
    share, order, gate = FairShare(2), [], asyncio.Event()

    async def prompt(who: Requester) -> None:
        async with share.place(who):
            order.append(who.name)
            await gate.wait()

    tasks = [asyncio.create_task(prompt(A)) for _ in range(8)]
    await until(lambda: share.holding() == {"a": 2} and share.waiting == 6)
    tasks += [asyncio.create_task(prompt(B)) for _ in range(4)]
    await until(lambda: share.waiting == 10)
    gate.set()
    await asyncio.gather(*tasks)
    # Each freed place goes to whoever holds fewer: b first (none), then the two take turns.
    assert order == ["a", "a", "b", "a", "b", "a", "b", "a", "b", "a", "a", "a"], order


async def test_a_small_requester_finds_a_place_when_a_big_one_holds_them_all() -> None:
    share, release = FairShare(4), asyncio.Event()
    small = Requester("comment", small=True)

    async def prompt(who: Requester) -> None:
        async with share.place(who):
            await release.wait()

    big = [asyncio.create_task(prompt(A)) for _ in range(10)]
    await until(lambda: share.holding() == {"a": 4})
    mine = [asyncio.create_task(prompt(small)) for _ in range(RESERVED + 1)]
    await until(lambda: share.holding() == {"a": 4, "comment": RESERVED})  # beyond the capacity, up to RESERVED
    assert share.waiting == 6 + 1
    release.set()
    await asyncio.gather(*big, *mine)
    assert share.in_use == 0 and share.waiting == 0


async def test_the_requester_comes_from_the_context_when_not_named() -> None:
    share, gate = FairShare(8), asyncio.Event()

    async def prompt(who: Requester) -> None:
        requester.set(who)
        async with share.place():
            await gate.wait()

    tasks = [asyncio.create_task(prompt(who)) for who in (A, A, B)]
    await until(lambda: share.holding() == {"a": 2, "b": 1})
    gate.set()
    await asyncio.gather(*tasks)


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    share, gate = FairShare(1), asyncio.Event()

    async def hold(who: Requester) -> str:
        async with share.place(who):
            await gate.wait()
        return who.name

    first = asyncio.create_task(hold(A))
    await until(lambda: share.in_use == 1)
    gone, kept = asyncio.create_task(hold(B)), asyncio.create_task(hold(Requester("c")))
    await until(lambda: share.waiting == 2)
    gone.cancel()
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, kept), timeout=5) == ["a", "c"]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert share.in_use == 0 and share.waiting == 0


async def test_with_shared_the_others_keep_below_it_while_a_small_requester_holds_a_place() -> None:
    share, gates = FairShare(6, shared=2), {}
    small = Requester("comment", small=True)

    async def prompt(who: Requester, k: int) -> None:
        async with share.place(who):
            gates[who.name, k] = gate = asyncio.Event()
            await gate.wait()

    big = [asyncio.create_task(prompt(A, k)) for k in range(20)]
    await until(lambda: share.holding() == {"a": 6})
    mine = asyncio.create_task(prompt(small, 0))
    await until(lambda: ("comment", 0) in gates)
    for k in range(5):  # five of a's answers come in; a takes a place again only below 2
        gates["a", k].set()
    await until(lambda: share.holding() == {"a": 2, "comment": 1})
    gates["comment", 0].set()
    await mine
    await until(lambda: share.holding() == {"a": 6})  # alone again: every place
    while not all(task.done() for task in big):
        for event in list(gates.values()):
            event.set()
        await asyncio.sleep(0)
    assert share.in_use == 0 and share.waiting == 0
