"""`python -m classifier.eval.compare A.json B.json ... [--chart out.png]`: several saved
evaluation reports side by side, as a Markdown table and optionally one chart, so a
comparison is rebuilt from the reports without rerunning the engine."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .chart import render_chart, render_tradeoff
from .report import comparison_table


@click.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None, help="PNG to write.")
@click.option("--tradeoff", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG of texts/s against level-1 F1, one point per report.")
def main(reports: tuple[Path, ...], chart: Path | None, tradeoff: Path | None) -> None:
    loaded = [json.loads(path.read_text(encoding="utf-8")) for path in reports]
    click.echo(comparison_table(loaded))
    if chart:
        click.echo(f"chart: {render_chart(loaded, chart)}")
    if tradeoff:
        click.echo(f"trade-off: {render_tradeoff(loaded, tradeoff)}")


if __name__ == "__main__":
    main()
