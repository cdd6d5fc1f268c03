"""`python -m classifier.eval.compare A.json B.json ... [--chart out.png]`: several saved
evaluation reports side by side, as a Markdown table and optionally one chart, so a
comparison is rebuilt from the reports without rerunning the engine."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .chart import render_chart
from .report import comparison_table


@click.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None, help="PNG to write.")
def main(reports: tuple[Path, ...], chart: Path | None) -> None:
    loaded = [json.loads(path.read_text(encoding="utf-8")) for path in reports]
    click.echo(comparison_table(loaded))
    if chart:
        click.echo(f"chart: {render_chart(loaded, chart)}")


if __name__ == "__main__":
    main()
