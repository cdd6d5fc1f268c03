"""The HTML report as a person sees it: results of a real run (the embedded model on the CPU
engine, 12 restaurant reviews), rendered, opened in headless Chromium (Debian's), screenshot
taken; the page loads without console errors and shows the headings and counts."""
from __future__ import annotations

import asyncio
import csv
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from classifier.llm.local import LocalVLLMProcessor
from classifier.report import summarize
from classifier.report.html import RunInfo, write_report
from classifier.service import ClassificationService
from classifier.settings import ClassifierSettings, EngineSettings
from classifier.taxonomy import load_taxonomy

from .conftest import CONFIGS
from .models import TEST_LLM

CAPABILITIES = ["classification", "stem_polarity", "alerts", "recommendations"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


async def _classify(texts: list[str]) -> list[dict[str, Any]]:
    processor = LocalVLLMProcessor(EngineSettings(llm=TEST_LLM, max_length=2048))
    await processor.start()
    try:
        service = ClassificationService(processor, {"restaurants": load_taxonomy(CONFIGS / "restaurants.json")},
                                        ClassifierSettings(max_paths=1, min_probability=0.0))
        return (await service.classify(texts, CAPABILITIES))["results"]
    finally:
        await processor.close()


@pytest.fixture(scope="module")
def results(shared_data: Path) -> list[dict[str, Any]]:
    with (shared_data / "semeval16_restaurants_train.csv").open(newline="", encoding="utf-8") as handle:
        texts = [row["text"] for _, row in zip(range(12), csv.DictReader(handle))]
    return asyncio.run(_classify([*texts, "   "]))


@pytest.mark.engine
def test_the_report_of_a_real_run_renders_in_chromium(results: list[dict[str, Any]], tmp_path: Path) -> None:
    taxonomy = load_taxonomy(CONFIGS / "restaurants.json")
    report = tmp_path / "report.html"
    write_report(report, results, taxonomy, RunInfo("restaurants", "SmolLM2-135M-Instruct", CAPABILITIES, 30.0))
    summary = summarize(results, taxonomy)
    assert summary.texts == 13 and summary.skipped == 1

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: scripts/setup.sh installs it (apt-get install chromium)"
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"failed to load {request.url}"))
            page.goto(report.as_uri())
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            headings = page.locator("h2").all_inner_texts()
            counts = {name: page.inner_text(f"#count-{name} b") for name in ("texts", "classified", "skipped", "errors")}
            tree = page.locator("table.tree tr").count()
            bars = page.locator("#topics svg rect").count()
        finally:
            browser.close()
    assert problems == [], problems
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert headings[:2] == ["The run", "Topics"] and "Example comments" in headings
    if summary.polarity:
        assert "Polarity per stem" in headings
    assert counts == {"texts": "13", "classified": str(summary.classified), "skipped": "1",
                      "errors": str(summary.errors)}
    assert tree == 1 + sum(1 for _ in taxonomy.nodes()), "one row per node, under a header"
    assert bars == min(len(summary.stems), 15)
