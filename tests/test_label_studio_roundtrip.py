"""The Label Studio round trip against a real Label Studio, as scripts/label_studio_roundtrip.sh
runs it (its own virtual environment, a loopback port, stopped at the end): a project from the
generated config, pre-annotated tasks from real results, an annotation through its API, its
export imported as gold, and the gold holding the correction."""
from __future__ import annotations

import subprocess

import pytest

from .conftest import ROOT


@pytest.mark.engine
def test_label_studio_round_trip_changes_the_gold():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "label_studio_roundtrip.sh")], capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 tasks, 3 with a pre-annotation" in done.stdout
    assert "gold before: taxonomy restaurants: 0 labels" in done.stdout
    assert "gold after: taxonomy restaurants: 1 labels" in done.stdout
    assert "as ['Service>General'] (source label_studio): round trip done" in done.stdout
