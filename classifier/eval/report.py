"""The evaluation report: one JSON-ready dict per run, and its text renderings.

The dict holds the run's description (`meta`), quality per level, exact-path and
stem-polarity accuracy, cost per text, error and truncation shares, the prefix-cache
counters when the backend reports them, and every text's prediction next to its gold.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

from ..taxonomy import Taxonomy, format_path
from .flags import flag_lines, flag_section
from .gold import Example
from .harness import Run
from .learning import decided_shares
from .metrics import (
    PathSet, exact_path_accuracy, hierarchical_scores, level_scores, majority_stems, polarity_accuracy,
)  # fmt: skip

Report = dict[str, Any]


def build_report(examples: Sequence[Example], run: Run, taxonomy: Taxonomy, meta: dict[str, Any]) -> Report:
    """Score `run` against `examples` (same order). Stem polarity is scored only when the
    gold has polarities and the run asked for them."""
    predictions = run.predictions
    gold = [e.stems for e in examples]
    n = len(examples)
    asked_polarity = "stem_polarity" in meta.get("capabilities", ())
    polarity = (
        polarity_accuracy([p.polarity for p in predictions], [e.polarity for e in examples])
        if asked_polarity and any(e.polarity for e in examples)
        else None
    )
    constant = majority_stems(gold)
    return {
        **meta,
        "texts": n,
        **_quality([p.paths for p in predictions], [p.stems for p in predictions], gold, taxonomy.depth),
        "baseline": {
            "predicted": sorted(format_path(None, s) for s in constant),
            **_quality([constant] * n, [constant] * n, gold, taxonomy.depth),
        },
        "stem_polarity": asdict(polarity) if polarity is not None else None,
        "flags": flag_section(examples, [p.flags for p in predictions], meta.get("capabilities", ())),
        "cost": {
            "llm_calls_per_text": run.usage.llm_calls / n,
            "prompt_tokens_per_text": run.usage.prompt_tokens / n,
            "completion_tokens_per_text": run.usage.completion_tokens / n,
            "texts_per_second": n / run.seconds if run.seconds else 0.0,
            "seconds": run.seconds,
            "usage": asdict(run.usage),
        },
        "decided": decided_shares([p.sources for p in predictions]),
        "error_share": sum(p.error is not None for p in predictions) / n,
        "truncation_share": sum(p.truncated for p in predictions) / n,
        "prefix_cache": (
            {**asdict(run.prefix_cache), "hit_rate": run.prefix_cache.hit_rate} if run.prefix_cache is not None else None
        ),
        "per_text": [
            {
                "id": e.id,
                "gold": sorted(format_path(None, s) for s in e.stems),
                "predicted": sorted(format_path(None, s) for s in p.stems),
                "paths": sorted(format_path(None, s) for s in p.paths),
                "probabilities": {format_path(None, s): round(v, 4) for s, v in sorted(p.probabilities.items())},
                "gold_polarity": {format_path(None, s): v for s, v in e.polarity.items()},
                "polarity": {format_path(None, s): v for s, v in p.polarity.items()},
                "classified": p.classified,
                "gold_flags": e.flags,
                "flags": {name: asdict(answer) for name, answer in p.flags.items()},
                "error": p.error,
                "truncated": p.truncated,
            }
            for e, p in zip(examples, predictions, strict=True)
        ],
    }


def _quality(paths: Sequence[PathSet], stems: Sequence[PathSet], gold: Sequence[PathSet], depth: int) -> Report:
    """Scores per level (every accepted path) and exact-path accuracy (complete stems only)."""
    return {
        "levels": [asdict(level_scores(paths, gold, k)) for k in range(1, depth + 1)],
        "hierarchical": asdict(hierarchical_scores(paths, gold)),
        "exact_path_accuracy": exact_path_accuracy(stems, gold),
    }


def format_table(report: Report) -> str:
    """The report as a terminal table: quality per level, then the run's cost."""
    cost = report["cost"]
    lines = [
        f"{report.get('label', 'run')}: {report['texts']} texts, taxonomy {report.get('taxonomy', '?')}, "
        f"model {report.get('model', '?')} ({report.get('backend', '?')})",
    ]
    if "classification" in report.get("capabilities", ("classification",)):
        lines.extend(_topic_lines(report))
    if report["stem_polarity"]:
        pol = report["stem_polarity"]
        lines.append(f"stem-polarity accuracy {pol['accuracy']:.3f} on {pol['pairs']} correctly found stems")
    lines.extend(flag_lines(report.get("flags") or {}))
    lines.append(
        f"LLM calls/text {cost['llm_calls_per_text']:.2f}, prompt tokens/text {cost['prompt_tokens_per_text']:.1f}, "
        f"completion tokens/text {cost['completion_tokens_per_text']:.1f}, texts/s {cost['texts_per_second']:.2f} "
        f"({cost['seconds']:.1f} s)"
    )
    if report.get("gold") and "size" in report["gold"]:  # topic labels
        gold, decided = report["gold"], report.get("decided") or {}
        lines.append(f"gold {gold['size']} comments, route {gold['route']}, {gold['examples']} examples per question; "
                     f"accepted nodes decided by " + ", ".join(f"{k} {v:.0%}" for k, v in decided.items()))
    elif report.get("gold"):  # flag labels, per capability
        gold = report["gold"]
        learned = [f"{name} {g['size']} ({g['positives']} holding one)" for name, g in gold.items()
                   if isinstance(g, dict) and "positives" in g]
        lines.append(f"flag gold: {', '.join(learned)}, route {gold['route']}, built in {gold['build_seconds']} s")
    lines.append(f"errors {report['error_share']:.1%} of texts, truncations {report['truncation_share']:.1%}")
    if report.get("calibration"):
        lines.extend(_calibration_lines(report["calibration"]))
    if report["prefix_cache"]:
        cache = report["prefix_cache"]
        lines.append(
            f"prefix cache: {cache['hits']} of {cache['queries']} prompt tokens served from cache "
            f"({cache['hit_rate']:.1%})"
        )
    return "\n".join(lines)


def _topic_lines(report: Report) -> list[str]:
    """Topic quality per level, hierarchical, exact path against the constant baseline."""
    lines = [f"{'level':>5} {'micro P':>8} {'micro R':>8} {'micro F1':>9} {'macro P':>8} {'macro R':>8} "
             f"{'macro F1':>9} {'labels':>7}"]
    for level in report["levels"]:
        micro, macro = level["micro"], level["macro"]
        lines.append(
            f"{level['level']:>5} {micro['precision']:>8.3f} {micro['recall']:>8.3f} {micro['f1']:>9.3f} "
            f"{macro['precision']:>8.3f} {macro['recall']:>8.3f} {macro['f1']:>9.3f} {level['labels']:>7}"
        )
    hier = report["hierarchical"]
    lines.append(f"hierarchical P {hier['precision']:.3f}  R {hier['recall']:.3f}  F1 {hier['f1']:.3f}")
    base = report["baseline"]
    lines.append(
        f"exact-path accuracy {report['exact_path_accuracy']:.3f} (always predicting the most frequent gold set "
        f"{base['predicted']}: {base['exact_path_accuracy']:.3f}, level-1 micro F1 {base['levels'][0]['micro']['f1']:.3f})"
    )
    return lines


def _calibration_lines(section: Report) -> list[str]:
    """Calibration error per level, and what the file's threshold (or the best one) decides."""
    how = "fitted on this run (in-sample)" if section["fitted_here"] else "held-back check of"
    lines = [f"calibration {how} {section['file']}:"]
    for level, scores in section["levels"].items():
        lines.append(f"  level {level}: expected calibration error {scores['ece_raw']:.3f} raw -> "
                     f"{scores['ece_calibrated']:.3f} calibrated ({scores['observations']} nodes, "
                     f"{scores['positives']} in the gold)")
    if section.get("nodes"):
        lines.append(f"  nodes with a map of their own: {', '.join(section['nodes'])}")
    chosen = section["min_probability"]
    row = next((r for r in section["thresholds"] if r["min_probability"] == chosen), None)
    if row:
        lines.append(f"  at --min-probability {chosen:g} the walk would reach micro F1 {_f1s(row)}")
    raw = section.get("raw_at_min_probability")
    if raw:
        lines.append(f"  uncalibrated, at --min-probability {raw['min_probability']:g}: micro F1 {_f1s(raw)}")
    return lines


def _f1s(row: Report) -> str:
    return ", ".join(f"L{k} {v:.3f}" for k, v in enumerate(row["micro_f1"], 1))


def comparison_table(reports: Sequence[Report]) -> str:
    """Several runs side by side as a Markdown table (for docs/eval-results.md), closed by
    the constant baseline of the first report that has one (all runs share a sample)."""
    depth = max(len(r["levels"]) for r in reports)
    head = ["run", *(f"L{k} micro F1" for k in range(1, depth + 1)), *(f"L{k} macro F1" for k in range(1, depth + 1)),
            "hier. F1", "exact path", "polarity acc.", "calls/text", "prompt tok/text", "compl. tok/text", "texts/s", "errors"]

    def quality(scores: Report) -> list[str]:
        levels = scores["levels"] + [None] * (depth - len(scores["levels"]))
        return [
            *(f"{lv[kind]['f1']:.3f}" if lv else "-" for kind in ("micro", "macro") for lv in levels),
            f"{scores['hierarchical']['f1']:.3f}" if "hierarchical" in scores else "-",
            f"{scores['exact_path_accuracy']:.3f}",
        ]

    rows = []
    for r in reports:
        cost = r["cost"]
        rows.append([
            r.get("label", "run"),
            *quality(r),
            f"{r['stem_polarity']['accuracy']:.3f}" if r["stem_polarity"] else "-",
            f"{cost['llm_calls_per_text']:.2f}",
            f"{cost['prompt_tokens_per_text']:.0f}",
            f"{cost['completion_tokens_per_text']:.1f}",
            f"{cost['texts_per_second']:.2f}",
            f"{r['error_share']:.1%}",
        ])
    base = next((r["baseline"] for r in reports if "baseline" in r), None)
    if base:
        rows.append([f"baseline: always {' + '.join(base['predicted']) or 'nothing'}", *quality(base), *["-"] * 6])
    return "\n".join("| " + " | ".join(row) + " |" for row in [head, ["---"] * len(head), *rows])
