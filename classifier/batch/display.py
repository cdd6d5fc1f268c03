"""What the batch command shows: a progress bar with texts/s and ETA, and the closing summary."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn,
    TimeRemainingColumn,
)  # fmt: skip
from rich.table import Table
from rich.text import Text


class RateColumn(ProgressColumn):
    """Texts per second since the task started: concurrent chunks finish in bursts, and a
    rate over the last moments of a burst reads as hundreds of thousands."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        speed = task.completed / elapsed if task.completed and elapsed else None
        return Text(f"{speed:.2f} texts/s" if speed else "-- texts/s", style="progress.data.speed")


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TextColumn("ETA"), TimeRemainingColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
        console=console,
    )  # fmt: skip


@dataclass
class Summary:
    rows: int  # data rows in the file
    skipped: int  # empty texts
    resumed: int  # done by earlier runs
    done_now: int
    failed: int
    seconds: float  # classifying, engine start excluded
    output: Path
    interrupted: bool
    top_paths: list[tuple[str, int]]
    answered: Counter[str] | None = None  # the distilled route: comments per part that answered them


def summary_table(s: Summary) -> Group:
    table = Table(title="batch_classify: interrupted (rerun the same command to resume)" if s.interrupted
                  else "batch_classify: done", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rate = f"{s.done_now / s.seconds:.1f}" if s.seconds > 0 and s.done_now else "-"
    for label, value in [
        ("rows in the file", s.rows), ("empty rows skipped", s.skipped), ("done by earlier runs", s.resumed),
        ("done by this run", s.done_now), ("failed (a rerun retries them)", s.failed),
        ("seconds classifying", f"{s.seconds:.1f}"), ("texts/s", rate), ("output", str(s.output)),
    ]:  # fmt: skip
        table.add_row(label, str(value))
    if s.answered is not None:
        answered = sum(s.answered[part] for part in ("learned", "llm"))
        table.add_row("answered without the LLM", f"{s.answered['learned']} of {answered} "
                                                  f"({s.answered['learned'] / max(1, answered):.0%})")
    paths = Table(title="top topic paths")
    paths.add_column("path")
    paths.add_column("texts", justify="right")
    for path, count in s.top_paths:
        paths.add_row(path, str(count))
    return Group(table, paths)
