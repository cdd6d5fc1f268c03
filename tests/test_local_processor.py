"""LocalVLLMProcessor on the real CPU engine with the embedded default model.

One engine serves the module (a start costs ~15-20 s on CPU); it is started outside any
event loop, which also shows the processor is not tied to the loop that started it.
The last tests stop it, crash a second one (which a replacement engine then takes over
from) and fail a third one's start.
"""
from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterator

import pytest
from jsonschema import Draft202012Validator

from classifier.calibration import FlagCalibration
from classifier.llm.base import Prompt
from classifier.llm.errors import BackendUnavailable
from classifier.llm.fairness import Requester, requester
from classifier.llm.local import LocalVLLMProcessor, llm_args, worker_env
from classifier.hierarchy import HierarchicalClassifier
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings, EngineSettings

from .trees import training
from .models import TEST_LLM

MAX_LENGTH = 512  # small, so the context guard is easy to reach
COLORS = ["red", "green", "blue", "yellow"]
SCHEMA = {
    "type": "object",
    "properties": {
        "color": {"type": "string", "enum": COLORS},
        "is_question": {"type": "boolean"},
    },
    "required": ["color", "is_question"],
    "additionalProperties": False,
}
INSTRUCTIONS = (
    "You read a sentence that names one color. Answer with JSON: the field \"color\" is "
    "the color the sentence names, and \"is_question\" says whether the sentence is a question."
)
COMMENTS = [
    f"The {color} one is mine." if k % 2 else f"Is the car {color}?"
    for k, color in enumerate(COLORS[i % 4] for i in range(16))
]


def prompts() -> list[Prompt]:
    return [Prompt(INSTRUCTIONS, comment) for comment in COMMENTS]


@pytest.fixture(scope="module")
def processor() -> Iterator[LocalVLLMProcessor]:
    proc = LocalVLLMProcessor(EngineSettings(llm=TEST_LLM, max_length=MAX_LENGTH))
    started = time.monotonic()
    asyncio.run(proc.start())
    print(f"CPU engine started in {time.monotonic() - started:.1f} s")
    yield proc
    asyncio.run(proc.close())


def test_worker_env_sets_what_the_engine_needs_before_import() -> None:
    cpu = worker_env(None)
    assert cpu["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    cores: set[int] = set()
    for part in cpu["VLLM_CPU_OMP_THREADS_BIND"].split(","):
        low, _, high = part.partition("-")
        cores.update(range(int(low), int(high or low) + 1))
    assert cores == os.sched_getaffinity(0)  # every core this process may use
    assert "CUDA_VISIBLE_DEVICES" not in cpu
    gpu = worker_env(3)
    assert gpu["CUDA_VISIBLE_DEVICES"] == "3" and "VLLM_CPU_OMP_THREADS_BIND" not in gpu
    # The operator's CUDA_VISIBLE_DEVICES=5,GPU-ab12 makes --gpu-list 1 the second of those.
    assert worker_env(1, ("5", "GPU-ab12"))["CUDA_VISIBLE_DEVICES"] == "GPU-ab12"


def test_cuda_graphs_on_gpu_eager_on_cpu_unless_asked() -> None:
    default = EngineSettings()
    assert llm_args(default, "m", None)["enforce_eager"] is True
    assert llm_args(default, "m", 0)["enforce_eager"] is False
    assert llm_args(EngineSettings(enforce_eager=True), "m", 0)["enforce_eager"] is True


@pytest.mark.engine
async def test_batch_is_schema_valid_and_in_order(processor: LocalVLLMProcessor) -> None:
    before = processor.usage.snapshot()
    results = await processor.process_with_schema(prompts(), SCHEMA, max_tokens=32)
    assert len(results) == 16
    assert all(r.ok and not r.truncated for r in results), [r.error for r in results]
    validator = Draft202012Validator(SCHEMA)
    assert all(validator.is_valid(r.value) for r in results)
    # The colors cycle, so a shuffled or shifted order would match few of them.
    named = [r.value["color"] for r in results]
    assert sum(n == COLORS[i % 4] for i, n in enumerate(named)) >= 14, named
    used = processor.usage.minus(before)
    assert used.llm_calls == 16 and used.errors == 0 and used.truncations == 0
    assert used.prompt_tokens > 16 * 50 and used.completion_tokens >= 16 * 8


@pytest.mark.engine
async def test_same_outputs_on_two_runs_the_second_mostly_from_the_prefix_cache(processor: LocalVLLMProcessor) -> None:
    first = await processor.process_with_schema(prompts(), SCHEMA, max_tokens=32)
    before = processor.usage.snapshot()
    second = await processor.process_with_schema(prompts(), SCHEMA, max_tokens=32)
    assert [r.value for r in first] == [r.value for r in second]
    used = processor.usage.minus(before)  # the same prompts again: the prefix cache serves most of them
    assert used.prompt_tokens // 2 < used.cached_prompt_tokens <= used.prompt_tokens, used


@pytest.mark.engine
async def test_overlong_comment_is_truncated_and_flagged(processor: LocalVLLMProcessor) -> None:
    before = processor.usage.snapshot()
    long_comment = "Is the car red? " + "It was parked on the street all night long. " * 150
    [result] = await processor.process_with_schema(
        [Prompt(INSTRUCTIONS, long_comment)], SCHEMA, max_tokens=32
    )
    assert result.ok and result.truncated, result
    assert Draft202012Validator(SCHEMA).is_valid(result.value)
    used = processor.usage.minus(before)
    assert used.truncations == 1 and used.errors == 0
    assert MAX_LENGTH - 32 - 40 < used.prompt_tokens <= MAX_LENGTH - 32  # cut to fit, not far below


@pytest.mark.engine
async def test_overflowing_fixed_part_fails_alone(processor: LocalVLLMProcessor) -> None:
    before = processor.usage.snapshot()
    huge = Prompt(INSTRUCTIONS + " Be careful." * 200, "Is the car red?")
    results = await processor.process_with_schema(
        [Prompt(INSTRUCTIONS, "The blue one is mine."), huge, Prompt(INSTRUCTIONS, "Is it green?")],
        SCHEMA,
        max_tokens=32,
    )
    assert results[0].ok and results[2].ok
    assert not results[1].ok and "context window" in results[1].error
    assert f"max_length={MAX_LENGTH}" in results[1].error
    used = processor.usage.minus(before)
    assert used.errors == 1 and used.llm_calls == 2


@pytest.mark.engine
async def test_concurrent_calls_with_different_schemas_each_get_their_own(
    processor: LocalVLLMProcessor,
) -> None:
    number_schema = {
        "type": "object",
        "properties": {"number": {"type": "integer", "minimum": 0, "maximum": 999}},
        "required": ["number"],
    }
    copy_numbers = "You copy numbers. Answer with JSON whose field \"number\" is the number in the message."
    refused = {"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}
    colors, numbers, bad = await asyncio.gather(
        processor.process_with_schema(prompts(), SCHEMA, max_tokens=32),
        processor.process_with_schema(
            [Prompt(copy_numbers, f"The number is {n}.") for n in (123, 456, 789)],
            number_schema,
            max_tokens=16,
        ),
        processor.process_with_schema([Prompt(INSTRUCTIONS, "Red.")] * 2, refused, max_tokens=16),
    )
    assert all(r.ok and set(r.value) == {"color", "is_question"} for r in colors)
    assert all(r.ok and set(r.value) == {"number"} for r in numbers)
    # A schema the grammar compiler (xgrammar, named so that whitespace can be switched off)
    # refuses fails its own items, not its neighbours'.
    assert all(not r.ok and "engine refused the request" in r.error and "xgrammar" in r.error for r in bad), bad


@pytest.mark.engine
async def test_health_reports_the_engine(processor: LocalVLLMProcessor) -> None:
    health = await processor.health()
    assert health.ok and health.backend == "local" and health.model == "SmolLM2-135M-Instruct"
    assert health.detail == {"workers": 1, "gpus": [], "running": 0, "waiting": 0}


@pytest.mark.engine
async def test_choice_answers_carry_the_models_probabilities(processor: LocalVLLMProcessor) -> None:
    options = ["A", "B", "C", "D"]
    instructions = ("Which color does the sentence name?\nA. red\nB. green\nC. blue\nD. none of these\n"
                    "Answer with one letter only.")
    results = await processor.process_choice([Prompt(instructions, c) for c in COMMENTS[:6]], options)
    for result in results:
        assert result.ok, result.error
        probabilities = result.value["probabilities"]
        assert set(probabilities) == set(options) and all(0.0 <= p <= 1.0 for p in probabilities.values())
        assert sum(probabilities.values()) == pytest.approx(1.0)
        assert probabilities[result.value["choice"]] == max(probabilities.values()), "greedy picks the likeliest"


@pytest.mark.engine
@pytest.mark.parametrize("strategy", ["score", "select", "flat"])
async def test_walks_give_probabilities_and_accept_by_the_threshold(processor: LocalVLLMProcessor,
                                                                     strategy: str) -> None:
    taxonomy = training()  # its prompts fit this module's small context window
    texts = ["The trainer rushed through the slides.", "Lunch was cold.", "Great content."]

    async def walk(**settings: object) -> list:
        return await HierarchicalClassifier(processor, ClassifierSettings(strategy=strategy, **settings)).classify(
            texts, taxonomy)

    loose = await walk(min_probability=0.0, max_paths=2)
    for result in loose:
        assert not result.errors, result.errors
        for node in result.node_results.values():
            assert set(node) == {"is_relevant", "confidence", "probability", "reasoning", "excerpt", "source"}
            assert 0.0 <= node["probability"] <= 1.0 and node["confidence"] == min(5, 1 + int(node["probability"] * 5))
    if strategy != "select":  # select names what it likes; the one-letter forms score every child
        assert all(len([p for p in r.accepted if len(p) == 1]) == 2 for r in loose), "no threshold: max_paths pass"
    threshold = 0.35
    strict = await walk(min_probability=threshold, max_paths=2)
    for before, after in zip(loose, strict):
        assert all(node["probability"] >= threshold for node in after.node_results.values())
        assert set(after.accepted) == set(after.node_results)
        # Level 1 is asked in the same batch both times (greedy), so its answers are the same and the
        # threshold keeps exactly the nodes that reach it. (Deeper batches differ, and vLLM is not
        # batch-invariant.)
        top = {path for path, node in before.node_results.items() if len(path) == 1 and node["probability"] >= threshold}
        assert {path for path in after.accepted if len(path) == 1} == top


class CountingProcessor:
    """The real processor, counting the prompts each kind of call sends."""

    def __init__(self, inner: LocalVLLMProcessor) -> None:
        self.inner, self.choices, self.schemas = inner, 0, 0
        self.backend, self.model, self.usage = inner.backend, inner.model, inner.usage

    async def process_choice(self, prompts, options):
        self.choices += len(prompts)
        return await self.inner.process_choice(prompts, options)

    async def process_with_schema(self, prompts, schema, *, max_tokens=256):
        self.schemas += len(prompts)
        return await self.inner.process_with_schema(prompts, schema, max_tokens=max_tokens)


@pytest.mark.engine
async def test_decisions_carry_probabilities_and_only_comments_past_the_threshold_get_details(
        processor: LocalVLLMProcessor) -> None:
    texts = ["The trainer rushed through the slides.", "My manager shouted at me and pushed me.",
             "Please add more exercises.", "Lunch was cold."]

    async def run(threshold: float) -> tuple[list[dict], CountingProcessor]:
        counting = CountingProcessor(processor)
        flags = {"alerts": FlagCalibration(threshold), "recommendations": FlagCalibration(threshold)}
        service = ClassificationService(counting, {"topics": training()}, ClassifierSettings(flags=flags))
        return (await service.classify(texts, ["alerts", "recommendations"]))["results"], counting

    undecided, counting = await run(math.inf)
    assert (counting.choices, counting.schemas) == (8, 0), "one decision per text and capability, no details"
    probabilities = [r[key]["probability"] for r in undecided for key in ("alerts", "recommendations")]
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    ordered = sorted(probabilities)  # halfway between two probabilities: a rerun's last digits cannot cross it
    threshold = (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
    decided, counting = await run(threshold)
    assert counting.schemas == sum(p >= threshold for p in probabilities) > 0, "details only past the threshold"
    for result in decided:
        for key, flag in (("alerts", "has_alerts"), ("recommendations", "has_recommendations")):
            if key in result:  # a small model may write details the output model refuses: that item's error
                assert result[key][flag] is bool(result[key][key]) is (result[key]["probability"] >= threshold)
            else:
                assert key in result["error"]


@pytest.mark.engine
async def test_the_walk_shows_labelled_comments_to_the_engine(processor: LocalVLLMProcessor) -> None:
    """Gold on the real engine: each question carries the nearest labelled comments, the answers
    stay valid, and the comment labelled already is answered by its label without a question."""
    from classifier.gold.embedder import Embedder
    from classifier.gold.knowledge import build_knowledge

    taxonomy = training()
    gold = {"The trainer went far too fast.": {("Delivery", "Pace")}, "The sandwiches were stale.": {("Logistics", "Catering")},
            "Nice weather today.": set()}
    knowledge = build_knowledge(taxonomy, list(gold), [frozenset(s) for s in gold.values()], Embedder(), "test",
                                learn=False)
    texts = ["The trainer rushed through the slides.", "Lunch was cold.", "the sandwiches were  STALE."]
    guidance = await knowledge.guide(texts, examples=2, route="llm")
    counting = CountingProcessor(processor)
    found = await HierarchicalClassifier(counting, ClassifierSettings(min_probability=0.0), guidance).classify(
        texts, taxonomy)
    assert all(not r.errors for r in found), [r.errors for r in found]
    assert found[2].accepted == [("Logistics",), ("Logistics", "Catering")]
    assert {n["source"] for n in found[2].node_results.values()} == {"gold"}
    assert {n["source"] for r in found[:2] for n in r.node_results.values()} <= {"llm"}
    assert counting.schemas >= 2  # the two new comments were asked; the labelled one was not
    shown = guidance.labelled(0, (), [c.name for c in taxonomy.root.children])
    assert shown[0] == ("The trainer went far too fast.", ["Delivery"])


@pytest.mark.engine
async def test_a_single_request_finishes_while_a_long_one_is_still_running(processor: LocalVLLMProcessor) -> None:
    finished: list[str] = []

    async def call(who: str, batch: list[Prompt]) -> list:
        requester.set(Requester(who, small=len(batch) == 1))
        results = await processor.process_with_schema(batch, SCHEMA, max_tokens=32)
        finished.append(who)
        return results

    big = asyncio.create_task(call("big", prompts() * 10))  # 160 prompts: more than the engine's places
    while (await processor.health()).detail["waiting"] == 0:  # the engine is full, the rest queued
        await asyncio.sleep(0.05)
    [small] = await call("small", [Prompt(INSTRUCTIONS, "Is the sky blue?")])
    assert finished == ["small"] and small.ok, "the single prompt went ahead of the queued ones and came back first"
    assert (await processor.health()).detail["waiting"] > 0, "the long request still had prompts queued"
    results = await big
    assert finished == ["small", "big"] and all(r.ok for r in results)


@pytest.mark.engine
async def test_close_stops_the_worker_cleanly(processor: LocalVLLMProcessor) -> None:
    [worker] = processor._workers
    started = time.monotonic()
    await processor.close()
    assert worker.process is not None and worker.process.exitcode == 0
    assert time.monotonic() - started < 15
    assert not (await processor.health()).ok
    [late] = await processor.process_with_schema([Prompt(INSTRUCTIONS, "Red.")], SCHEMA)
    assert not late.ok and "stopped" in late.error


@pytest.mark.engine
async def test_worker_crash_fails_pending_items_then_a_replacement_takes_over() -> None:
    proc = LocalVLLMProcessor(EngineSettings(llm=TEST_LLM, max_length=MAX_LENGTH))
    await proc.start()
    try:
        batch = asyncio.create_task(proc.process_with_schema(prompts() * 8, SCHEMA, max_tokens=32))
        await asyncio.sleep(1.0)  # the batch is in the engine by now
        [worker] = proc._workers
        assert worker.process is not None
        worker.process.kill()
        results = await asyncio.wait_for(batch, timeout=30)
        assert all(not r.ok and "exited unexpectedly" in r.error for r in results), results[0]
        assert not (await proc.health()).ok
        [during] = await proc.process_with_schema([Prompt(INSTRUCTIONS, "Red.")], SCHEMA)
        assert not during.ok and "exited unexpectedly" in during.error and "restarting it" in during.error

        crashed_pid, began = worker.process.pid, time.monotonic()
        while not (await proc.health()).ok:  # a replacement engine starts in the background
            assert time.monotonic() - began < 300, worker.problem()
            await asyncio.sleep(1.0)
        print(f"replacement engine ready after {time.monotonic() - began:.1f} s")
        assert worker.process.pid != crashed_pid
        results = await proc.process_with_schema(prompts(), SCHEMA, max_tokens=32)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    finally:
        await proc.close()
    assert worker.process.exitcode == 0, "the replacement stops cleanly"


@pytest.mark.engine
async def test_engine_start_failure_is_backend_unavailable_with_the_reason(tmp_path) -> None:
    proc = LocalVLLMProcessor(EngineSettings(llm=str(tmp_path / "no-such-model")))
    with pytest.raises(BackendUnavailable, match="failed to start the engine: .*no-such-model"):
        await proc.start()
    assert not (await proc.health()).ok

