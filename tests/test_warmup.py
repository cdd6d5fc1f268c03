"""The start's warm-up: every fixed question a comment may ask, asked once in the background."""
from __future__ import annotations

import asyncio

import pytest

from classifier.capabilities.flags import ALERT_WORDS, RECOMMENDATION_WORDS, TREND_WORDS
from classifier.prompts import sorting_prompt
from classifier.settings import ClassifierSettings
from classifier.warmup import OPTIONS, WarmUp, fixed_prompts
from tests.scripted import ScriptedProcessor
from tests.test_service import RUSHED, service
from tests.trees import training


@pytest.mark.parametrize("strategy", ["select", "per_node"])
async def test_every_fixed_question_a_comment_asks_was_asked_by_the_warm_up(strategy: str) -> None:
    svc, proc = service(strategy=strategy)
    await svc.classify([RUSHED, "Great content"], ["classification", "recommendations", "alerts", "trend"])
    warmed = fixed_prompts({"topics": training()}, ClassifierSettings(strategy=strategy))
    asked = {prompt.instructions for prompt in proc.prompts}
    assert asked <= {prompt.instructions for prompt in warmed}
    assert len({p.instructions for p in warmed}) == len(warmed), "each once"


def test_two_taxonomies_warm_each_nodes_questions_and_the_shared_ones_once() -> None:
    one = fixed_prompts({"topics": training()}, ClassifierSettings())
    two = fixed_prompts({"topics": training(), "again": training()}, ClassifierSettings())
    assert len(one) == len(two)  # the same tree twice: nothing new
    inner = 1 + sum(not node.is_leaf for _, node in training().nodes())
    # Decisions whose instructions are the same (their words come after the comment) are one prefix.
    decisions = {sorting_prompt(s.words, RUSHED, s.hint).instructions for s in (ALERT_WORDS, RECOMMENDATION_WORDS, TREND_WORDS)}
    assert len(one) == inner + len(decisions) + 3  # each node's question; the flags' decisions and details


async def test_the_warm_up_asks_in_the_background_requesters_name_and_counts_what_failed() -> None:
    prompts = fixed_prompts({"topics": training()}, ClassifierSettings())
    proc = ScriptedProcessor(lambda prompt, schema: "engine hiccup" if prompt is prompts[0] else {"A": 1.0})
    warm = WarmUp(prompts)
    assert warm.status() == {"prompts": len(prompts), "asked": 0, "failed": 0, "done": False, "seconds": None}
    await warm.run(proc)
    assert {call.requester.name for call in proc.calls} == {"warm-up"}
    assert all(call.schema == {"options": list(OPTIONS)} for call in proc.calls)
    assert [p.instructions for p in proc.prompts] == [p.instructions for p in prompts]
    assert max(len(call.prompts) for call in proc.calls) == 1  # one at a time: a real comment waits for one at most
    status = warm.status()
    assert (status["asked"], status["failed"], status["done"]) == (len(prompts), 1, True)
    assert warm.errors == ["engine hiccup"]


async def test_the_warm_up_waits_while_requests_are_being_answered() -> None:
    prompts = fixed_prompts({"topics": training()}, ClassifierSettings())
    proc = ScriptedProcessor(lambda prompt, schema: {"A": 1.0})
    busy = True
    warm = WarmUp(prompts)
    running = asyncio.create_task(warm.run(proc, idle=lambda: not busy))
    await asyncio.sleep(0.2)
    assert proc.calls == [] and warm.status()["asked"] == 0  # a request is in: nothing asked
    busy = False
    await asyncio.wait_for(running, 5)
    assert warm.status()["asked"] == len(prompts)
