"""The self-contained HTML report: one file, inline CSS, charts as inline SVG, no script and
no network at view time, so it opens anywhere and can be mailed as it is.

Every comment's text is escaped by the template engine (comments are user input).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from ..files import atomic_open
from ..taxonomy import Taxonomy, format_path
from .summary import POLARITIES, SEVERITIES, Summary, stem_of, summarize

TOP_STEMS = 15  # bars in the chart of complete stems
EXAMPLE_STEMS = 6  # stems that get example comments
EXAMPLES_PER_STEM = 3
MAX_ALERTS = 25  # shown in full, most severe first; the rest are counted
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class RunInfo:
    """What the report says about the run that produced the results."""

    taxonomy: str
    model: str
    capabilities: Sequence[str]
    seconds: float | None = None  # classifying time, when known


def marked(text: str, excerpt: str) -> Markup:
    """The text, escaped, with the first occurrence of `excerpt` (any case) in <mark>."""
    at = text.lower().find(excerpt.strip().lower()) if excerpt.strip() else -1
    if at < 0:
        return escape(text)
    end = at + len(excerpt.strip())
    return escape(text[:at]) + Markup("<mark>") + escape(text[at:end]) + Markup("</mark>") + escape(text[end:])


def _tree(summary: Summary, taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Every node in file order with the comments that touch it."""
    counts = Counter()
    for path, count in summary.paths.items():
        counts[stem_of(path)] += count
    return [
        {"depth": len(path) - 1, "name": node.name, "count": counts[format_path(None, path)],
         "share": counts[format_path(None, path)] / summary.texts if summary.texts else 0.0}
        for path, node in taxonomy.nodes()
    ]  # fmt: skip


def _examples(results: Sequence[Mapping[str, Any]], stems: Sequence[str]) -> dict[str, list[Markup]]:
    examples: dict[str, list[Markup]] = defaultdict(list)
    for result in results:
        found = {stem_of(p) for p in (result.get("classification_result") or {}).get("classification_paths", ())}
        for stem in stems:
            if stem in found and len(examples[stem]) < EXAMPLES_PER_STEM:
                excerpt = ((result.get("stem_polarity") or {}).get(stem) or {}).get("excerpt", "")
                examples[stem].append(marked(result["text"], excerpt))
    return examples


def _alerts(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    listed = [
        {**alert, "text": marked(result["text"], alert["excerpt"])}
        for result in results
        for alert in (result.get("alerts") or {}).get("alerts", [])
    ]
    return sorted(listed, key=lambda a: SEVERITIES.index(a["severity"]))


def _paraphrases(results: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    by_qualifier: dict[str, list[str]] = defaultdict(list)
    for result in results:
        for item in (result.get("recommendations") or {}).get("recommendations", []):
            by_qualifier[item["qualifier"]].append(item["paraphrased_recommendation"])
    return dict(sorted(by_qualifier.items(), key=lambda kv: -len(kv[1])))


def render_report(results: Sequence[Mapping[str, Any]], taxonomy: Taxonomy, run: RunInfo) -> str:
    """The report as one HTML document."""
    summary = summarize(results, taxonomy)
    top = list(summary.stems.items())[:TOP_STEMS]
    return _TEMPLATES.get_template("report.html.j2").render(
        run=run, summary=summary, tree=_tree(summary, taxonomy), top_stems=top,
        top_count=max((c for _, c in top), default=1), polarities=POLARITIES,
        examples=_examples(results, [stem for stem, _ in top[:EXAMPLE_STEMS]]), alerts=_alerts(results),
        paraphrases=_paraphrases(results), max_alerts=MAX_ALERTS, texts_per_second=(summary.texts / run.seconds) if run.seconds else None,
    )  # fmt: skip


def write_report(path: Path, results: Sequence[Mapping[str, Any]], taxonomy: Taxonomy, run: RunInfo) -> None:
    """Write the report atomically (a reader never sees half a page)."""
    text = render_report(results, taxonomy, run)
    with atomic_open(path) as handle:
        handle.write(text)
