"""A small PNG of one or more evaluation runs: F1 per level beside LLM calls per text,
so the quality a strategy buys and what it costs read at one glance (README, docs)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from .report import Report  # noqa: E402


def render_chart(reports: Sequence[Report], out: Path) -> Path:
    """Left: micro (solid) and macro (hatched) F1 per level, one colour per run, and the
    constant baseline's micro F1 (dashed). Right: LLM calls per text per run. Returns `out`."""
    depth = max(len(r["levels"]) for r in reports)
    labels = [r.get("label", f"run {i + 1}") for i, r in enumerate(reports)]
    colours = plt.get_cmap("tab10").colors
    fig, (quality, cost) = plt.subplots(1, 2, figsize=(8, 3.2), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / (2 * len(reports))
    for i, (report, label) in enumerate(zip(reports, labels)):
        for j, kind in enumerate(("micro", "macro")):
            xs = [lv["level"] - 1 + (2 * i + j - len(reports) + 0.5) * width for lv in report["levels"]]
            bars = quality.bar(
                xs, [lv[kind]["f1"] for lv in report["levels"]], width, color=colours[i % len(colours)],
                hatch="//" if kind == "macro" else None, edgecolor="white",
                label=f"{label} ({kind})",
            )
            quality.bar_label(bars, fmt="%.2f", fontsize=6)
    baseline = next((r["baseline"] for r in reports if "baseline" in r), None)
    if baseline:
        quality.hlines([lv["micro"]["f1"] for lv in baseline["levels"]],
                       [k - 0.45 for k in range(depth)], [k + 0.45 for k in range(depth)],
                       colors="black", linestyles="dashed", linewidth=1,
                       label=f"always {' + '.join(baseline['predicted']) or 'nothing'} (micro)")
    quality.set_xticks(range(depth), [f"level {k}" for k in range(1, depth + 1)])
    quality.set_ylim(0, 1)
    quality.set_ylabel("F1")
    quality.legend(fontsize=7, loc="upper right")
    bars = cost.bar(range(len(reports)), [r["cost"]["llm_calls_per_text"] for r in reports],
                    tick_label=labels, color=[colours[i % len(colours)] for i in range(len(reports))])
    cost.bar_label(bars, fmt="%.1f", fontsize=8)
    cost.set_ylabel("LLM calls per text")
    cost.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"{reports[0].get('taxonomy', '')}: {reports[0]['texts']} texts, {reports[0].get('model', '')}",
                 fontsize=9)
    return _save(fig, out)


def render_reliability(report: Report, out: Path) -> Path:
    """The reliability diagram of a calibration section: per level, the share of right
    answers against the stated probability, raw and calibrated, beside the diagonal a
    perfectly calibrated model would follow. Returns `out`."""
    levels = report["calibration"]["levels"]
    fig, axes = plt.subplots(1, len(levels), figsize=(3.4 * len(levels), 3.3), squeeze=False)
    for ax, (level, scores) in zip(axes[0], levels.items()):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="dotted", linewidth=1)
        for kind, colour in (("raw", "tab:red"), ("calibrated", "tab:blue")):
            bins = [b for b in scores[f"reliability_{kind}"] if b["count"]]
            ax.plot([b["mean_probability"] for b in bins], [b["accuracy"] for b in bins], marker="o", color=colour,
                    markersize=4, label=f"{kind} (ECE {scores[f'ece_{kind}']:.3f})")
        ax.set_title(f"level {level}: {scores['observations']} nodes", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("stated probability", fontsize=8)
        ax.set_ylabel("share in the gold", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{report.get('label', '')}: {report.get('taxonomy', '')}, {report['texts']} texts, "
                 f"{report.get('model', '')}", fontsize=9)
    return _save(fig, out)


def _save(fig: plt.Figure, out: Path) -> Path:
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def render_tradeoff(reports: Sequence[Report], out: Path) -> Path:
    """Speed against quality, one point per run: texts/s (log scale) and level-1 micro F1, each
    point named by its run, the share of nodes the learned classifier decided beside it."""
    fig, axes = plt.subplots(figsize=(7, 4))
    for i, report in enumerate(reports):
        speed, f1 = report["cost"]["texts_per_second"], report["levels"][0]["micro"]["f1"]
        learned = (report.get("decided") or {}).get("learned")
        axes.scatter([speed], [f1], s=30)
        note = report.get("label", "run") + (f" ({learned:.0%} learned)" if learned is not None else "")
        axes.annotate(note, (speed, f1), textcoords="offset points", xytext=(6, 10 - 9 * (i % 3)), fontsize=7)
    axes.set_xscale("log")
    axes.set_xlabel("texts per second (log scale)")
    axes.set_ylabel("level-1 micro F1")
    axes.grid(True, alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
