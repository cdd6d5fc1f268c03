"""Cost of the two walk strategies with a processor that always answers correctly.

Runs `select` and `per_node` over SemEval restaurant sentences on configs/restaurants.json
through the real service, with the scripted oracle from the tests, and prints LLM calls
and prompt tokens (counted with the embedded model's tokenizer and chat template) per text.
Quality is perfect by construction; what differs is the cost of getting there.

    .venv/bin/python -m bench.strategy_cost --sample 200
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import click
from transformers import AutoTokenizer

from classifier.eval.gold import load_semeval, sample
from classifier.llm.base import Prompt
from classifier.llm.embedded import SMOLLM2_135M, resolve_llm
from classifier.service import ClassificationService
from classifier.settings import DEFAULT_CACHE_DIR, ClassifierSettings
from classifier.taxonomy import load_taxonomy
from tests.scripted import ScriptedProcessor, oracle

ROOT = Path(__file__).resolve().parent.parent


@click.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path),
              default=ROOT.parent / "shared" / "data" / "semeval16_restaurants_train.csv")
@click.option("--config", type=click.Path(exists=True, path_type=Path), default=ROOT / "configs" / "restaurants.json")
@click.option("--sample", "size", default=200, show_default=True)
@click.option("--seed", default=42, show_default=True)
def main(data: Path, config: Path, size: int, seed: int) -> None:
    tokenizer = AutoTokenizer.from_pretrained(resolve_llm(SMOLLM2_135M.name, DEFAULT_CACHE_DIR))

    def count_tokens(prompt: Prompt) -> int:
        text = tokenizer.apply_chat_template(prompt.messages(), tokenize=False, add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    examples = sample(load_semeval(data), size, seed)
    taxonomy = load_taxonomy(config)
    gold = {e.text: e.stems for e in examples}
    print(f"{len(examples)} sentences, taxonomy {config.name} ({sum(1 for _ in taxonomy.nodes())} nodes)")
    print(f"{'strategy':<10} {'LLM calls/text':>15} {'prompt tokens/text':>19} {'exact paths':>12}")
    for strategy in ("select", "per_node"):
        processor = ScriptedProcessor(oracle(gold), count_tokens=count_tokens)
        service = ClassificationService(processor, {taxonomy.name: taxonomy}, ClassifierSettings(strategy=strategy))
        body = asyncio.run(service.classify([e.text for e in examples], ["classification"]))
        exact = sum(
            {tuple(p.split(">")[1:]) for p in r["classification_result"]["classification_paths"]
             if taxonomy.is_complete_stem(tuple(p.split(">")[1:]))} == set(e.stems)
            for r, e in zip(body["results"], examples)
        )
        n = len(examples)
        print(f"{strategy:<10} {processor.usage.llm_calls / n:>15.2f} {processor.usage.prompt_tokens / n:>19.1f} "
              f"{exact / n:>12.1%}")


if __name__ == "__main__":
    main()
