"""Gold in: labels checked against the taxonomy (unknown paths refused by name), CSV and
Label Studio export files, and the store's idempotent writes on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from classifier.gold.label_studio import LabelStudioError, read_export
from classifier.gold.labels import LabelError, checked, read_csv, taxonomy_version
from classifier.gold.store import GoldStore
from classifier.jobs.store import JobStore
from classifier.jobs.tables import SCHEMA_VERSION, meta
from classifier.taxonomy import load_taxonomy

from .jobs_support import postgres_database
from .trees import training

RESTAURANTS = load_taxonomy(Path(__file__).resolve().parent.parent / "configs" / "restaurants.json")


def test_paths_are_read_as_stems_with_or_without_the_root():
    label = checked(RESTAURANTS, "Cold soup.", ["Food>Quality", "Restaurant reviews>Service>General"],
                    {"Food>Quality": "Negative"})
    assert label.stems == {("Food", "Quality"), ("Service", "General")}
    assert label.polarity == {("Food", "Quality"): "Negative"}
    assert checked(RESTAURANTS, "Hello there", []).stems == frozenset()  # about none of the topics


@pytest.mark.parametrize(("paths", "named"), [
    (["Food>Taste"], "'Food>Taste' is not a path of taxonomy"),
    (["Food"], "'Food' does not end at a leaf"),
    (["Kitchen>Quality"], "'Kitchen>Quality' is not a path"),
])
def test_unknown_or_incomplete_paths_are_refused_by_name(paths, named):
    with pytest.raises(LabelError, match=named):
        checked(RESTAURANTS, "text", paths)


def test_polarity_must_name_one_of_the_labels_paths_and_a_known_value():
    with pytest.raises(LabelError, match="not among the label's paths"):
        checked(RESTAURANTS, "t", ["Food>Quality"], {"Service>General": "Positive"})
    with pytest.raises(LabelError, match="'Great' of 'Food>Quality' is none of"):
        checked(RESTAURANTS, "t", ["Food>Quality"], {"Food>Quality": "Great"})


def test_csv_import_names_the_line_of_a_bad_path(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text('text,paths,polarity\n"Great pasta, slow waiter",Food>Quality|Service>General,Positive|Negative\n'
                    "Just a sentence,,\n", encoding="utf-8")
    first, second = read_csv(good, RESTAURANTS)
    assert first.polarity == {("Food", "Quality"): "Positive", ("Service", "General"): "Negative"}
    assert second.stems == frozenset()
    bad = tmp_path / "bad.csv"
    bad.write_text("text,paths\nok,Food>Quality\nwrong,Food>Flavour\n", encoding="utf-8")
    with pytest.raises(LabelError, match=r"bad.csv line 3: label path 'Food>Flavour'"):
        read_csv(bad, RESTAURANTS)


def label_studio_task(task_id: int, text: str, annotations: list[dict]) -> dict:
    """A task as Label Studio 1.x writes it in a JSON export."""
    return {"id": task_id, "data": {"text": text}, "annotations": annotations, "predictions": [],
            "meta": {}, "created_at": "2026-12-02T10:00:00.000000Z", "updated_at": "2026-12-02T10:05:00.000000Z",
            "inner_id": task_id, "total_annotations": len(annotations), "cancelled_annotations": 0,
            "total_predictions": 0, "comment_count": 0, "project": 1, "file_upload": None}


def annotation(annotation_id: int, paths: list[list[str]], updated: str, cancelled: bool = False) -> dict:
    return {"id": annotation_id, "completed_by": 1, "was_cancelled": cancelled, "ground_truth": False,
            "created_at": updated, "updated_at": updated, "lead_time": 4.2, "prediction": {}, "result_count": 0,
            "result": [{"id": "a1b2", "type": "taxonomy", "value": {"taxonomy": paths}, "origin": "manual",
                        "to_name": "text", "from_name": "topics"}]}


def test_label_studio_export_gives_each_tasks_latest_annotation_that_was_not_cancelled():
    export = [
        label_studio_task(1, "Rude waiter", [annotation(1, [["Food", "Quality"]], "2026-12-02T10:01:00Z"),
                                             annotation(2, [["Service", "General"]], "2026-12-02T10:02:00Z")]),
        label_studio_task(2, "Nice view", [annotation(3, [["Ambience", "General"]], "2026-12-02T10:03:00Z", True)]),
        label_studio_task(3, "Nobody labelled me", []),
    ]
    [label] = read_export(json.loads(json.dumps(export)), RESTAURANTS)
    assert (label.text, label.stems) == ("Rude waiter", {("Service", "General")})
    with pytest.raises(LabelError, match="Label Studio task 7: label path 'Food>Smell'"):
        read_export([label_studio_task(7, "x", [annotation(4, [["Food", "Smell"]], "t")])], RESTAURANTS)
    with pytest.raises(LabelStudioError, match="list of tasks"):
        read_export({"tasks": []}, RESTAURANTS)


def test_taxonomy_version_changes_with_the_tree():
    assert taxonomy_version(RESTAURANTS) == taxonomy_version(load_taxonomy(RESTAURANTS.source))
    assert taxonomy_version(RESTAURANTS) != taxonomy_version(training())


def check_store(store: GoldStore) -> None:
    first = checked(RESTAURANTS, "The soup was cold.", ["Food>Quality"])
    assert store.put("restaurants", [first], source="import", owner="cli") == (1, 0)
    again = checked(RESTAURANTS, "the soup  was cold.", ["Food>Quality", "Service>General"])  # same text
    assert store.put("restaurants", [again], source="correction", owner="k1") == (0, 1)
    [stored] = store.labels("restaurants")
    assert stored.label.stems == again.stems and stored.source == "correction" and stored.owner == "k1"
    assert store.labels("laptops") == []  # per taxonomy
    assert store.changed_since("restaurants", stored.updated_at - 1) == 1
    assert store.changed_since("restaurants", stored.updated_at) == 0
    assert store.delete("restaurants", first.key) and not store.delete("restaurants", first.key)
    assert store.labels("restaurants") == []
    with pytest.raises(LabelError, match="unknown label source"):
        store.put("restaurants", [first], source="guess", owner="cli")


def test_store_is_idempotent_per_text_on_sqlite(tmp_path):
    check_store(GoldStore(JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path).engine))


def test_store_is_idempotent_per_text_on_postgresql(tmp_path):
    with postgres_database() as url:
        jobs = JobStore(url, tmp_path)
        try:
            check_store(GoldStore(jobs.engine))
        finally:
            jobs.close()


def test_a_schema_1_database_gains_the_gold_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    old = JobStore(url, tmp_path)
    with old.engine.begin() as db:
        db.execute(meta.delete())
        db.execute(insert(meta).values(version=1))
        db.exec_driver_sql("DROP TABLE gold_labels")
    old.close()
    store = JobStore(url, tmp_path)
    with store.engine.connect() as db:
        assert max(db.scalars(select(meta.c.version))) == SCHEMA_VERSION == 2
    assert GoldStore(store.engine).labels("restaurants") == []
