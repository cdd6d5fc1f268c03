"""VLLMServerProcessor against a real vLLM server running the small embedded model.

One server for the module (a start costs ~40 s on CPU), scheduling by priority and running
two requests at once, so that a queue forms at the server; the last test kills it and
starts it again on the same port, so it runs twice in all.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from jsonschema import Draft202012Validator

from classifier.hierarchy import select_schema
from classifier.llm.base import Prompt
from classifier.llm.chain import FallbackChain
from classifier.llm.embedded import resolve_llm
from classifier.llm.fairness import Requester, requester
from classifier.llm.probabilities import listed_probabilities
from classifier.llm.schema import answer_token_bound
from classifier.llm.server import VLLMServerProcessor
from classifier.settings import EngineSettings

from .engine_server import EngineServer
from .fault_server import FaultServer
from .models import TEST_LLM

pytestmark = pytest.mark.engine

NUMBER_SCHEMA = {
    "type": "object",
    "properties": {"number": {"type": "integer", "minimum": 0, "maximum": 999}},
    "required": ["number"],
}
INSTRUCTIONS = (
    "You copy numbers. The user message contains one number. Answer with JSON whose "
    'field "number" is exactly that number, for example {"number": 42}.'
)
NUMBERS = [101 + 29 * i for i in range(32)]  # distinct, so a result shows whose it is


def number_prompts() -> list[Prompt]:
    return [Prompt(INSTRUCTIONS, f"The number is {n}.") for n in NUMBERS]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    model = resolve_llm(TEST_LLM, EngineSettings().cache_dir)
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with EngineServer(model, max_model_len=2048, log_path=log,
                      extra_args=["--scheduling-policy", "priority", "--max-num-seqs", "2"]) as server:
        print(f"vLLM server answered after {server.started_in:.1f} s")
        yield server


def settings(engine: EngineServer, **overrides: object) -> EngineSettings:
    return EngineSettings(
        backend="vllm-server", server_urls=(engine.url,), request_timeout=60, **overrides
    )


async def test_batch_is_schema_valid_in_order_and_concurrency_bounded(engine: EngineServer) -> None:
    async with VLLMServerProcessor(settings(engine, max_concurrent=4)) as proc:
        results = await proc.process_with_schema(number_prompts(), NUMBER_SCHEMA, max_tokens=16)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    validator = Draft202012Validator(NUMBER_SCHEMA)
    assert all(validator.is_valid(r.value) for r in results)
    copied = [r.value["number"] for r in results]
    # A 135M model copies most numbers right; a shuffled order would match almost none.
    assert sum(c == n for c, n in zip(copied, NUMBERS)) >= 28, copied
    assert proc.peak_in_flight == 4
    assert proc.usage.llm_calls == 32 and proc.usage.completion_tokens > 0
    assert proc.model == engine.model  # llm=None: the server's only model


async def test_a_long_comment_is_shortened_with_the_servers_tokenizer(engine: EngineServer) -> None:
    long = "The number is 7. " + "Nothing else matters here. " * 300  # ~1,800 tokens
    async with VLLMServerProcessor(settings(engine, max_length=512)) as proc:
        short, cut = await proc.process_with_schema([Prompt(INSTRUCTIONS, "The number is 7."), Prompt(INSTRUCTIONS, long)],
                                                    NUMBER_SCHEMA, max_tokens=16)
    assert short.ok and not short.truncated
    assert cut.ok and cut.truncated, cut.error
    assert proc.usage.truncations == 1 and proc.usage.prompt_tokens <= 2 * 512


async def test_choice_answers_come_with_probabilities_from_the_server(engine: EngineServer) -> None:
    options = ["A", "B", "C"]
    instructions = "Is the number small?\nA. below 300\nB. 300 or more\nC. no number\nAnswer with one letter only."
    async with VLLMServerProcessor(settings(engine)) as proc:
        results = await proc.process_choice(number_prompts()[:6], options)
        results += await proc.process_choice([Prompt(instructions, "The number is 120.")], options)
    for result in results:
        assert result.ok, result.error
        probabilities = result.value["probabilities"]
        assert set(probabilities) == set(options) and sum(probabilities.values()) == pytest.approx(1.0)
        assert probabilities[result.value["choice"]] == max(probabilities.values())
    assert proc.usage.completion_tokens == len(results), "one token each"


async def test_schema_answers_come_with_the_tokens_that_spell_them(engine: EngineServer) -> None:
    schema = select_schema(["Food", "Service", "Ambience"], max_paths=2, reasoning=False)
    instructions = "Which topics does the restaurant review talk about? Answer with JSON."
    async with VLLMServerProcessor(settings(engine)) as proc:
        results = await proc.process_with_schema(
            [Prompt(instructions, "The fish was great but the waiter was rude."), Prompt(instructions, "Nice decor.")],
            schema, max_tokens=answer_token_bound(schema))
    for result in results:
        assert result.ok, result.error
        assert json.loads("".join(token for token, _ in result.tokens)) == result.value
        probabilities = listed_probabilities(result.tokens, "topics")
        assert probabilities is not None and len(probabilities) == len(result.value["topics"])
        assert all(0.0 < p <= 1.0 for p in probabilities)


async def test_a_small_requests_prompt_overtakes_a_files_queue_at_the_server(engine: EngineServer) -> None:
    finished: list[str] = []

    async def ask(prompt: Prompt, who: Requester) -> None:
        requester.set(who)  # this task's own copy of the context
        [result] = await proc.process_with_schema([prompt], NUMBER_SCHEMA, max_tokens=16)
        assert result.ok, result.error
        finished.append(who.name)

    async with VLLMServerProcessor(settings(engine, max_concurrent=40)) as proc:
        file = [asyncio.create_task(ask(p, Requester("file"))) for p in number_prompts()[:24]]
        while proc.in_flight < 24:  # the whole file is at the server, two running, the rest queued
            await asyncio.sleep(0.01)
        await ask(Prompt(INSTRUCTIONS, "The number is 7."), Requester("one comment", small=True))
        await asyncio.gather(*file)
        health = await proc.health()
    # In arrival order it would finish last (25th); by priority it takes the next free place.
    assert finished.index("one comment") < 8, finished
    assert health.detail["priority"] == {engine.url: "accepted"}


async def test_a_real_server_answers_as_the_fallback_of_a_primary_that_went_down(engine: EngineServer) -> None:
    with FaultServer(models=[engine.model]) as primary:
        dead = EngineSettings(backend="vllm-server", server_urls=(primary.url,), retry_deadline=0.5)
        chain = FallbackChain([VLLMServerProcessor(dead, retry_backoff=0.01), VLLMServerProcessor(settings(engine))])
        for link in chain.links:
            await link.start()
        try:
            primary.down = True
            results = await chain.process_with_schema(number_prompts()[:8], NUMBER_SCHEMA, max_tokens=16)
        finally:
            await chain.close()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert sum(r.value["number"] == n for r, n in zip(results, NUMBERS)) >= 6
    assert chain.answers == [0, 8]


async def test_killed_server_fails_items_in_bounded_time_then_recovers(engine: EngineServer) -> None:
    async with VLLMServerProcessor(settings(engine, max_concurrent=4, retry_deadline=1.0)) as proc:
        batch = asyncio.create_task(proc.process_with_schema(number_prompts(), NUMBER_SCHEMA, max_tokens=16))
        while proc.usage.llm_calls < 4:  # some answered, the rest queued or in flight
            await asyncio.sleep(0.01)
        engine.kill()
        killed = time.monotonic()
        results = await asyncio.wait_for(batch, timeout=30)
        failed_within = time.monotonic() - killed
        failed = [r for r in results if not r.ok]
        assert failed and all(engine.url in r.error for r in failed), [r.error for r in failed]
        assert failed_within < 5  # fast connection refusals until the 1 s retry deadline
        assert not (await proc.health()).ok

        await asyncio.to_thread(engine.start)  # same port; the processor keeps its clients
        print(f"vLLM server answered again after {engine.started_in:.1f} s")
        results = await proc.process_with_schema(number_prompts()[:8], NUMBER_SCHEMA, max_tokens=16)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert (await proc.health()).ok
