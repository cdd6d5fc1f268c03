"""The local engine's queue: urgent requests at once and the others sent back beyond SHARED;
otherwise the others a few per step, in the order they came."""
from __future__ import annotations

from classifier.llm.base import Prompt
from classifier.llm.local.admission import BULK_PER_STEP, SHARED, Admission
from classifier.llm.local.messages import Request


def requests(first: int, count: int, *, urgent: bool = False) -> list[Request]:
    return [Request(k, Prompt("Echo.", str(k)), None, 1, ("a",), urgent=urgent) for k in range(first, first + count)]


def ids(batch: list[Request]) -> list[int]:
    return [r.id for r in batch]


def test_the_others_join_a_few_per_step_in_the_order_they_came() -> None:
    queue, running = Admission(), []
    queue.queue(requests(0, 10))
    add, back = queue.plan(running)
    assert ids(add) == list(range(BULK_PER_STEP)) and back == []
    running += add
    add, back = queue.plan(running)
    assert ids(add) == list(range(BULK_PER_STEP, 2 * BULK_PER_STEP)) and back == []
    assert len(queue) == 10 - 2 * BULK_PER_STEP


def test_an_urgent_request_joins_at_once_and_sends_the_latest_others_back() -> None:
    queue = Admission()
    running = requests(0, 6)  # admitted in this order
    queue.queue(requests(6, 3))  # still waiting
    queue.queue(requests(100, 1, urgent=True))
    add, back = queue.plan(running)
    assert ids(add) == [100], "the urgent one, and no other while it runs"
    assert back == list(range(SHARED, 6)), "all but the first SHARED admitted go back"
    assert ids(list(queue.bulk)) == [*range(SHARED, 6), 6, 7, 8], "to the front of the queue, in their order"
    running = running[:SHARED] + add
    add, back = queue.plan(running)
    assert add == [] and back == [], "while the urgent one runs, the others keep to SHARED"
    add, back = queue.plan(running[:SHARED])  # the urgent one is done
    assert ids(add) == list(range(SHARED, SHARED + BULK_PER_STEP))
