"""What the command lines share: the engine and classifier flags, each with an environment
twin (`--port` <-> `CLASSIFIER_PORT`), and the one place that turns them into `Settings`.

Defaults come from the settings dataclasses themselves, so a flag and the library never
disagree about what "not given" means.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import click

from .calibration import Calibration, CalibrationError, FlagCalibration, load_calibration
from .distill import DISTILLED
from .gold import ROUTES
from .hierarchy import STRATEGIES
from .llm.embedded import DEFAULT_LLM, EMBEDDED
from .llm.errors import ProcessorError
from .llm.pool import BACKENDS, ProcessorPool
from .llm.urls import redacted
from .settings import ClassifierSettings, EngineSettings, ServerSettings, Settings
from .taxonomy import Taxonomy, TaxonomyError, load_taxonomy

ENV_PREFIX = "CLASSIFIER_"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "topics.json"
# The thresholds of the capabilities that decide before detailing (alerts, recommendations,
# trend, ...), fitted for the default model; a --calibration file's own flags section wins.
DEFAULT_FLAGS = DEFAULT_CONFIG.with_name("flags.calibration.json")
# Mistakes a user can fix from the message alone: shown as one line, never a traceback.
USER_ERRORS = (TaxonomyError, ProcessorError, CalibrationError)

F = TypeVar("F", bound=Callable[..., Any])


def option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option whose environment twin is CLASSIFIER_ + its long name (`--gpu-list` -> CLASSIFIER_GPU_LIST)."""
    long = next(d for d in decls if d.startswith("--")).split("/")[0]
    envvar = ENV_PREFIX + long[2:].upper().replace("-", "_")
    return click.option(*decls, envvar=envvar, show_envvar=True, **kwargs)


def stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several option decorators as one, listed in the order `--help` shows them."""

    def apply(function: F) -> F:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def _gpu_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected GPU indices separated by commas, like 0,1") from None


def _calibration(ctx: click.Context, param: click.Parameter, value: Path | None) -> Calibration | None:
    try:
        return load_calibration(value) if value is not None else None
    except CalibrationError as exc:
        raise click.BadParameter(str(exc)) from None


def _min_probability(given: float | None, calibration: Calibration | None) -> float:
    """The flag when given, else the threshold tuned with the calibration, else the default."""
    if given is not None:
        return given
    if calibration is not None and calibration.min_probability is not None:
        return calibration.min_probability
    return ClassifierSettings.min_probability


def flag_calibrations(calibration: Calibration | None, defaults: Path = DEFAULT_FLAGS) -> dict[str, FlagCalibration]:
    """Each capability's decision: from the --calibration file where it has one, else the default file's."""
    shipped = load_calibration(defaults).flags if defaults.exists() else {}
    return {**shipped, **(calibration.flags if calibration else {})}


engine_options = stack(
    option("--config", "--default-config", "config", type=click.Path(dir_okay=False, path_type=Path),
           default=DEFAULT_CONFIG, help="Taxonomy file (one root node, the prototype's topics.json format)."),
    option("--backend", type=click.Choice(BACKENDS), default=EngineSettings.backend,
           help="local: vLLM in-process (GPU, or its CPU build without one). vllm-server: OpenAI-compatible servers."),
    option("--vllm-server-url", "server_urls", multiple=True, metavar="URL",
           help=f"Server for --backend vllm-server, of the form http://host:port/v1; repeat the flag or "
                f"separate by commas for several [default: {EngineSettings.server_urls[0]}]"),
    option("--vllm-api-key", "server_api_key", default=None, metavar="KEY",
           help="API key of servers started with --api-key (vllm-server)."),
    option("--llm", default=None, metavar="MODEL",
           help=f"Model: an embedded model's name ({', '.join(EMBEDDED)}), a folder or a hub name (local), or "
                f"the name the server lists (vllm-server). Default: the embedded {DEFAULT_LLM} (local), the "
                "server's only model (vllm-server)."),
    option("--fallback-server-url", "fallback_server_urls", multiple=True, metavar="URL",
           help="A server used only while the primary backend cannot answer (every server set aside, the engine "
                "dead); repeat or separate by commas for several. Back to the primary once it answers again."),
    option("--fallback", type=click.Choice(["local"]), default=None,
           help="local: a local engine (the GPUs of --gpu-list, else the CPU) started beside a server backend, "
                "answering while its servers (and any --fallback-server-url) cannot."),
    option("--fallback-llm", default=None, metavar="MODEL",
           help="The fallbacks' model. Default: the fallback servers' only model, the local engine's embedded default."),
    option("--gpu-list", callback=_gpu_list, metavar="0,1",
           help="GPUs for --backend local, one engine each, numbered as CUDA numbers the devices this process "
                "sees (after CUDA_VISIBLE_DEVICES). Default: every visible GPU; without one, the CPU engine."),
    option("--enforce-eager/--no-enforce-eager", default=None,
           help="Run the local engine without CUDA graphs. Default: eager on CPU (faster start), graphs on GPU."),
    option("--gpu-memory", type=click.FloatRange(0.05, 1.0), default=EngineSettings.gpu_memory,
           help="Fraction of each GPU's memory vLLM may use."),
    option("--max-length", type=click.IntRange(256), default=EngineSettings.max_length,
           help="Context window in tokens (prompt + answer); longer comments are shortened."),
    option("--max-concurrent", type=click.IntRange(1), default=EngineSettings.max_concurrent,
           help="Requests in flight to the servers, all URLs together (vllm-server)."),
    option("--max-running", type=click.IntRange(1), default=EngineSettings.max_running,
           help="Prompts each local engine runs at once; more wait, each request in turn (local)."),
    option("--retry-deadline", type=click.FloatRange(0), default=EngineSettings.retry_deadline,
           help="Seconds a failed request is retried, on another server where there is one (vllm-server)."),
    option("--kv-cache-gib", type=click.FloatRange(0.1), default=EngineSettings.kv_cache_gib,
           help="KV cache of the CPU engine in GiB (local, no GPU)."),
    option("--block-size", type=click.IntRange(0), default=EngineSettings.block_size,
           help="KV block size of the local engine; 0 = the engine's own."),
    option("--batch-size", type=click.IntRange(1), default=ClassifierSettings.batch_size,
           help="Most prompts sent to the backend in one call."),
    option("--strategy", type=click.Choice(STRATEGIES), default=ClassifierSettings.strategy,
           help="select: one prompt per node picks its children. per_node: one yes/no prompt per child (the prototype's). "
                "score: one letter per node, every child scored by its probability. flat (small trees): one prompt "
                "per text names complete stems."),
    option("--max-paths", type=click.IntRange(1), default=ClassifierSettings.max_paths,
           help="select, score, flat: the most children one node may pass on."),
    option("--reasoning/--no-reasoning", default=ClassifierSettings.reasoning,
           help="select: ask for a short reason after the topics (slower; see docs/eval-results.md)."),
    option("--few-shot/--no-few-shot", default=ClassifierSettings.few_shot,
           help="select: show example answers built from the children's keywords."),
    option("--min-confidence", type=click.IntRange(1, 5), default=ClassifierSettings.min_confidence,
           help="per_node: lowest confidence (1-5) accepted."),
    option("--min-probability", type=click.FloatRange(0, 1), default=None,
           help=f"select, score, flat: lowest probability (calibrated, with --calibration) a node needs to be accepted. "
                f"Default: the calibration file's tuned threshold, else {ClassifierSettings.min_probability}."),
    option("--calibration", callback=_calibration, type=click.Path(exists=True, dir_okay=False, path_type=Path),
           default=None, help="select, score, flat: per-level calibration of the model's probabilities, written by "
                              "python -m classifier.eval --fit-calibration."),
    option("--require-excerpt/--no-require-excerpt", default=ClassifierSettings.require_excerpt,
           help="per_node: accept only answers that quote the comment."),
    option("--max-stem-definitions", type=click.IntRange(0), default=ClassifierSettings.max_stem_definitions,
           help="Stem capabilities: how many path nodes' definitions go in the prompt (0 = all)."),
    option("--stem-reasoning/--no-stem-reasoning", default=ClassifierSettings.stem_reasoning,
           help="stem_polarity: one call per stem that also gives a reasoning and an excerpt. Default: one call per "
                "text judges all its stems, polarity only (its confidence from the model's probability)."),
    option("--route", type=click.Choice((*ROUTES, DISTILLED)), default=ClassifierSettings.route,
           help="select, where the taxonomy has gold: cascade (the classifier learned from the gold decides the "
                "nodes it is sure of, the LLM the rest), learned (it decides alone), llm (the LLM alone). "
                "batch_classify.py also: distilled (the LLM answers a sample of the file, models learned from its "
                "answers the rest, the LLM where they are unsure)."),
    option("--examples", type=click.IntRange(0), default=ClassifierSettings.examples,
           help="select, where the taxonomy has gold: the nearest labelled comments each LLM question shows."),
    option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=EngineSettings.cache_dir,
           help="Where the converted embedded model lives."),
)  # fmt: skip


def visible_devices(environ: Mapping[str, str]) -> tuple[str, ...] | None:
    """The devices CUDA_VISIBLE_DEVICES leaves visible, in its order; None when it is unset."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _gpu_settings(options: dict[str, Any], environ: Mapping[str, str]) -> tuple[tuple[int, ...], tuple[str, ...] | None]:
    """`--gpu-list` checked against what this process sees (default: all of it)."""
    if options["backend"] != "local" and options.get("fallback") != "local":
        return (), None
    visible = visible_devices(environ)
    count = len(visible) if visible is not None else len(ProcessorPool.gpu_memory())
    gpu_list = options["gpu_list"]
    if gpu_list is None:
        return tuple(range(count)), visible
    unseen = [gpu for gpu in gpu_list if not 0 <= gpu < count]
    if unseen:
        seen = f"CUDA_VISIBLE_DEVICES={environ['CUDA_VISIBLE_DEVICES']}" if visible is not None else "no CUDA_VISIBLE_DEVICES"
        raise click.BadParameter(
            f"GPU {unseen[0]} is not visible: this process sees {count} GPU(s) ({seen}), numbered 0-{count - 1} "
            "in CUDA's order", param_hint="--gpu-list")
    return tuple(gpu_list), visible


def build_settings(options: dict[str, Any], server: ServerSettings | None = None,
                   environ: Mapping[str, str] = os.environ) -> Settings:
    """The one `Settings` of a run, from the parsed flags (and their environment twins)."""
    gpu_list, visible = _gpu_settings(options, environ)
    engine = EngineSettings(
        backend=options["backend"],
        llm=options["llm"],
        gpu_list=gpu_list,
        visible_devices=visible,
        enforce_eager=options["enforce_eager"],
        gpu_memory=options["gpu_memory"],
        max_length=options["max_length"],
        server_urls=split_urls(options["server_urls"]) or EngineSettings.server_urls,
        server_api_key=options["server_api_key"] or None,
        max_concurrent=options["max_concurrent"],
        max_running=options["max_running"],
        retry_deadline=options["retry_deadline"],
        kv_cache_gib=options["kv_cache_gib"],
        block_size=options["block_size"] or None,
        cache_dir=options["cache_dir"],
        fallback_server_urls=split_urls(options["fallback_server_urls"]),
        fallback_local=options["fallback"] == "local",
        fallback_llm=options["fallback_llm"],
    )
    classifier = ClassifierSettings(
        strategy=options["strategy"],
        max_paths=options["max_paths"],
        reasoning=options["reasoning"],
        few_shot=options["few_shot"],
        min_confidence=options["min_confidence"],
        min_probability=_min_probability(options["min_probability"], options["calibration"]),
        calibration=options["calibration"],
        flags=flag_calibrations(options["calibration"]),
        require_excerpt=options["require_excerpt"],
        max_stem_definitions=options["max_stem_definitions"],
        stem_reasoning=options["stem_reasoning"],
        batch_size=options["batch_size"],
        route="cascade" if options["route"] == DISTILLED else options["route"],  # distilled: cascade past the sample
        examples=options["examples"],
    )
    return Settings(engine=engine, classifier=classifier, server=server or ServerSettings())


def split_urls(values: Sequence[str]) -> tuple[str, ...]:
    """Server URLs from repeated flags, each of which may be a comma-separated list (the
    prototype's form) or, from the environment, a space-separated one."""
    return tuple(url for value in values for url in value.replace(",", " ").split())


def load_taxonomies(config: Path, extra: Sequence[tuple[str, Path]] = ()) -> dict[str, Taxonomy]:
    """The --config taxonomy (named after its file, the default) and every NAME=PATH extra."""
    taxonomies = {config.stem: load_taxonomy(config)}
    for name, path in extra:
        if name in taxonomies:
            raise click.BadParameter(f"taxonomy name {name!r} is given twice", param_hint="--taxonomy")
        taxonomies[name] = load_taxonomy(path, name=name)
    return taxonomies


def describe(settings: Settings, model: str) -> str:
    """`backend local (CPU), model X`: what a user needs to know about the engine they got."""
    engine = settings.engine
    where = ""
    if engine.backend == "local":
        where = f" (GPUs {','.join(map(str, engine.gpu_list))})" if engine.gpu_list else " (CPU)"
    elif engine.backend == "vllm-server":
        where = f" ({', '.join(map(redacted, engine.server_urls))})"
    fallbacks = [*map(redacted, engine.fallback_server_urls), *(["a local engine"] if engine.fallback_local else [])]
    return f"backend {engine.backend}{where}, model {model}" + (f", falling back to {', '.join(fallbacks)}" if fallbacks else "")
