"""The shared flags: each reaches `Settings`, from the command line or its environment twin."""
from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from classifier.calibration import load_calibration
from classifier.cli import DEFAULT_FLAGS, build_settings, engine_options
from classifier.settings import ClassifierSettings, EngineSettings, Settings


@click.command()
@engine_options
def show(**options: Any) -> None:
    click.get_current_context().obj["settings"] = build_settings(options)


def settings(args: list[str], env: dict[str, str] | None = None) -> Settings:
    holder: dict[str, Settings] = {}
    result = CliRunner().invoke(show, args, env=env, obj=holder)
    assert result.exit_code == 0, result.output
    return holder["settings"]


def test_no_flags_means_the_library_defaults() -> None:
    got = settings(["--backend", "vllm-server"])
    # The decisions' thresholds come from the shipped file, fitted for the default model.
    assert got.classifier == ClassifierSettings(flags=load_calibration(DEFAULT_FLAGS).flags)
    assert set(got.classifier.flags) >= {"alerts", "recommendations", "trend"}
    assert got.engine == EngineSettings(backend="vllm-server")


def test_flags_reach_engine_and_classifier_settings() -> None:
    got = settings(["--backend", "vllm-server", "--vllm-server-url", "http://a:1/v1", "--vllm-server-url", "http://b:2/v1",
                    "--vllm-api-key", "k", "--kv-cache-gib", "2.5", "--block-size", "0", "--reasoning", "--few-shot",
                    "--max-paths", "2", "--strategy", "per_node", "--min-confidence", "4"])  # fmt: skip
    assert got.engine.server_urls == ("http://a:1/v1", "http://b:2/v1") and got.engine.server_api_key == "k"
    assert got.engine.kv_cache_gib == 2.5 and got.engine.block_size is None  # 0: the engine's own
    assert (got.classifier.reasoning, got.classifier.few_shot, got.classifier.max_paths) == (True, True, 2)
    assert (got.classifier.strategy, got.classifier.min_confidence) == ("per_node", 4)


@pytest.mark.parametrize(("variable", "value", "read"), [
    ("CLASSIFIER_REASONING", "1", lambda s: s.classifier.reasoning is True),
    ("CLASSIFIER_VLLM_API_KEY", "secret", lambda s: s.engine.server_api_key == "secret"),
    ("CLASSIFIER_VLLM_SERVER_URL", "http://a:1/v1 http://b:2/v1", lambda s: len(s.engine.server_urls) == 2),
    ("CLASSIFIER_BLOCK_SIZE", "128", lambda s: s.engine.block_size == 128),
])  # fmt: skip
def test_environment_twins(variable: str, value: str, read: Any) -> None:
    assert read(settings(["--backend", "vllm-server"], env={variable: value}))


def test_the_prototypes_flag_forms() -> None:
    got = settings(["--backend", "vllm-server", "--default-config", "configs/restaurants.json",
                    "--vllm-server-url", "http://a:1/v1,http://b:2/v1", "--vllm-server-url", "http://c:3/v1"])
    assert got.engine.server_urls == ("http://a:1/v1", "http://b:2/v1", "http://c:3/v1")
    holder: dict[str, Any] = {}

    @click.command()
    @engine_options
    def config(**options: Any) -> None:
        holder["config"] = options["config"]

    assert CliRunner().invoke(config, ["--default-config", "configs/restaurants.json"]).exit_code == 0
    assert str(holder["config"]) == "configs/restaurants.json"


def test_gpu_list_counts_the_gpus_cuda_visible_devices_leaves() -> None:
    from classifier.cli import build_settings as build

    def local(gpu_list: str | None, env: dict[str, str]) -> EngineSettings:
        options = {**_DEFAULTS, "backend": "local", "gpu_list": gpu_list and tuple(map(int, gpu_list.split(",")))}
        return build(options, environ=env).engine

    engine = local(None, {"CUDA_VISIBLE_DEVICES": "2,3"})
    assert engine.gpu_list == (0, 1) and engine.visible_devices == ("2", "3")
    assert local("1", {"CUDA_VISIBLE_DEVICES": "2,3"}).gpu_list == (1,)
    assert local(None, {"CUDA_VISIBLE_DEVICES": ""}).gpu_list == (), "nothing visible: the CPU engine"
    with pytest.raises(click.BadParameter, match=r"GPU 2 is not visible: this process sees 2 GPU\(s\) "
                                                 r"\(CUDA_VISIBLE_DEVICES=2,3\)"):
        local("0,2", {"CUDA_VISIBLE_DEVICES": "2,3"})


def _defaults() -> dict[str, Any]:
    holder: dict[str, Any] = {}

    @click.command()
    @engine_options
    def grab(**options: Any) -> None:
        holder.update(options)

    CliRunner().invoke(grab, [], catch_exceptions=False)
    return holder


_DEFAULTS = _defaults()
