"""The Label Studio round trip against a real Label Studio (see label_studio_roundtrip.sh,
which starts one on a loopback port in a virtual environment of its own):

1. a project from the labelling config generated from the taxonomy;
2. tasks pre-annotated with the service's results (`python -m classifier.gold tasks`);
3. an annotation submitted through Label Studio's API, correcting one task;
4. Label Studio's JSON export imported as gold (`python -m classifier.gold import --kind
   label-studio`), and the gold checked to hold the correction.

    .venv/bin/python scripts/label_studio_roundtrip.py --url http://127.0.0.1:18080 --token TOKEN \
        --results out.json --config configs/restaurants.json --data-dir /tmp/gold
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import httpx

from classifier.gold.label_studio import FROM_NAME, TO_NAME, labelling_config
from classifier.taxonomy import Taxonomy, load_taxonomy


def gold(*args: str) -> str:
    """Run `python -m classifier.gold ARGS` as a user would; its output."""
    done = subprocess.run([sys.executable, "-m", "classifier.gold", *args], capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


@click.command()
@click.option("--url", required=True, help="Label Studio's address (loopback).")
@click.option("--token", required=True, help="A Label Studio API token.")
@click.option("--results", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A job's output file or batch_classify's JSON output.")
@click.option("--config", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--correct", default="Service>General", show_default=True, help="The path the annotator gives task 1.")
def main(url: str, token: str, results: Path, config: Path, data_dir: Path, correct: str) -> None:
    taxonomy = load_taxonomy(config)
    where = ["--config", str(config), "--data-dir", str(data_dir)]
    api = httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60)
    with tempfile.TemporaryDirectory(prefix="ls-roundtrip-") as scratch:
        round_trip(api, taxonomy, results, config, where, Path(scratch), correct)


def round_trip(api: httpx.Client, taxonomy: Taxonomy, results: Path, config: Path, where: list[str], scratch: Path,
               correct: str) -> None:

    project = api.post("/api/projects", json={"title": f"{taxonomy.name} round trip",
                                               "label_config": labelling_config(taxonomy)})
    project.raise_for_status()
    project_id = project.json()["id"]
    print(f"1. project {project_id} created from the generated labelling config")

    made = gold("tasks", str(results), "--config", str(config), "--out", str(scratch / "tasks.json"),
                "--model-version", "classifier-roundtrip")
    print("2.", made.strip().split(":")[0], "made from the results")
    tasks = json.loads((scratch / "tasks.json").read_text(encoding="utf-8"))
    api.post(f"/api/projects/{project_id}/import", json=tasks).raise_for_status()
    stored = api.get("/api/tasks", params={"project": project_id, "fields": "all"}).json()
    stored = stored["tasks"] if isinstance(stored, dict) else stored
    predicted = sum(bool(t.get("predictions")) for t in stored)
    print(f"   imported into Label Studio: {len(stored)} tasks, {predicted} with a pre-annotation")

    first = min(stored, key=lambda t: t["id"])
    annotation = {"result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "taxonomy",
                              "value": {"taxonomy": [correct.split(">")]}}], "was_cancelled": False}
    api.post(f"/api/tasks/{first['id']}/annotations", json=annotation).raise_for_status()
    print(f"3. annotated task {first['id']} ({first['data']['text']!r}) as {correct}")

    export = api.get(f"/api/projects/{project_id}/export", params={"exportType": "JSON"})
    export.raise_for_status()
    (scratch / "export.json").write_bytes(export.content)
    annotated = [t for t in export.json() if t.get("annotations")]
    print(f"4. exported {len(export.json())} tasks, {len(annotated)} annotated")

    before = gold("list", *where, "--limit", "1000")
    print("   gold before:", next(l for l in before.splitlines() if l.startswith("taxonomy")))
    print("  ", gold("import", str(scratch / "export.json"), "--kind", "label-studio", *where).strip())
    after = gold("list", *where, "--limit", "1000")
    print("   gold after:", next(l for l in after.splitlines() if l.startswith("taxonomy")))
    labels = [json.loads(l) for l in after.splitlines() if l.startswith("{")]
    line = next((label for label in labels if label["text"] == first["data"]["text"]), None)
    if not line or line["paths"] != [correct] or line["source"] != "label_studio":
        raise SystemExit(f"the correction is not in the gold: {line}")
    print(f"   the gold now labels {line['text']!r} as {line['paths']} (source {line['source']}): round trip done")


if __name__ == "__main__":
    main()
