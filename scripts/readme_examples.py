"""The README's example answers, from the service as shipped: the default model, the default
settings of `classifier_server.py` (the same `build_settings`), `configs/topics.json` and
`configs/restaurants.json`. Prints each request and its answer, with the model and the date.

    .venv/bin/python scripts/readme_examples.py > runs/readme-examples.txt
"""
from __future__ import annotations

import asyncio
import datetime
import json
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from classifier.cli import DEFAULT_CONFIG, build_settings, engine_options, load_taxonomies  # noqa: E402
from classifier.llm.pool import ProcessorPool  # noqa: E402
from classifier.service import ClassificationService  # noqa: E402

RESTAURANTS = DEFAULT_CONFIG.with_name("restaurants.json")
REQUESTS = [
    {"texts": ["The trainer rushed the last module", "Lunch was cold"]},
    {"texts": ["Please send the slides before the session"], "capabilities": ["recommendations"]},
    {"texts": ["Lunch was cold", "The fire exit was locked during the whole training"], "capabilities": ["alerts"]},
    {"texts": ["A colleague keeps touching me in the lift and laughs when I tell him to stop"],
     "capabilities": ["alerts"]},
    {"texts": ["Sessions keep getting longer every month"], "capabilities": ["trend"]},
    {"texts": ["Since the new manager came, the sessions have got worse every month"], "capabilities": ["trend"]},
    {"texts": ["The steak was overpriced"], "taxonomy": "restaurants", "capabilities": ["stem_polarity"]},
    {"texts": ["The trainer rushed the last module"], "capabilities": ["stem_polarity"]},
    {"texts": ["Fewer slides, more exercises please"], "capabilities": ["stem_recommendations"]},
    {"texts": ["The coffee gets worse every session"], "capabilities": ["stem_trend"]},
    {"texts": ["The steak was overpriced"], "project_name": "Bistro 2026", "taxonomy": "restaurants",
     "capabilities": ["classification", "recommendations", "alerts", "trend", "stem_polarity",
                      "stem_recommendations", "stem_trend"]},
    # Ordinary comments and real ones side by side: what alerts and recommendations must tell apart.
    {"texts": ["My manager keeps making comments about my accent and I dread coming to work",
               "We will go back every time we are in the City."], "capabilities": ["alerts", "recommendations"]},
]


@click.command()
@engine_options
def main(**options: object) -> None:
    settings = build_settings(options)
    taxonomies = load_taxonomies(DEFAULT_CONFIG, [("restaurants", RESTAURANTS)])
    asyncio.run(_run(settings, taxonomies))


async def _run(settings, taxonomies) -> None:
    pool = ProcessorPool(settings.engine)
    await pool.start()
    try:
        service = ClassificationService(pool.processor, taxonomies, settings.classifier,
                                         default_taxonomy=DEFAULT_CONFIG.stem)
        print(f"# model {pool.processor.model}, backend {pool.processor.backend}, {datetime.date.today()}")
        for request in REQUESTS:
            body = await service.classify(request["texts"], request.get("capabilities"), request.get("project_name"),
                                          request.get("taxonomy"))
            print(json.dumps(request, ensure_ascii=False))
            for result in body["results"]:
                print("  " + json.dumps(result, ensure_ascii=False))
    finally:
        await pool.close()


if __name__ == "__main__":
    main()
