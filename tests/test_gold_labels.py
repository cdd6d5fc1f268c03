"""Gold in: labels checked against the taxonomy (unknown paths refused by name), CSV and
Label Studio export files, and the store's idempotent writes on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from classifier.gold import OPERATOR
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


def test_label_studio_imports_refuse_what_they_cannot_read_naming_the_task():
    choices = label_studio_task(8, "Rude waiter", [annotation(5, [], "t")])
    choices["annotations"][0]["result"] = [{"type": "choices", "value": {"choices": ["Service"]}}]
    with pytest.raises(LabelStudioError, match="task 8: a result of type 'choices' cannot be read"):
        read_export([choices], RESTAURANTS)
    json_min = [{"id": 9, "text": "Rude waiter", "topics": {"taxonomy": [["Service", "General"]]}}]
    with pytest.raises(LabelStudioError, match="task 9 has no annotations list.*export as JSON"):
        read_export(json_min, RESTAURANTS)
    with pytest.raises(LabelStudioError, match="task 2 of the export is not an object"):
        read_export([label_studio_task(1, "x", []), "not a task"], RESTAURANTS)


def test_csv_with_a_byte_order_mark_reads_and_other_encodings_are_refused_by_name(tmp_path):
    excel = tmp_path / "excel.csv"
    excel.write_bytes("text,paths\nRude waiter,Service>General\n".encode("utf-8-sig"))
    [label] = read_csv(excel, RESTAURANTS)
    assert label.stems == {("Service", "General")}
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,paths\nCaf\u00e9 was cold,Food>Quality\n".encode("latin-1"))
    with pytest.raises(LabelError, match="latin.csv: not UTF-8 text"):
        read_csv(latin, RESTAURANTS)
    with pytest.raises(LabelError, match="NUL"):
        checked(RESTAURANTS, "cold\x00soup", ["Food>Quality"])


def test_taxonomy_version_changes_with_the_tree():
    assert taxonomy_version(RESTAURANTS) == taxonomy_version(load_taxonomy(RESTAURANTS.source))
    assert taxonomy_version(RESTAURANTS) != taxonomy_version(training())


def check_store(store: GoldStore) -> None:
    first = checked(RESTAURANTS, "The soup was cold.", ["Food>Quality"])
    assert store.put("restaurants", [first], source="import", owner=OPERATOR) == (1, 0)
    again = checked(RESTAURANTS, "the soup  was cold.", ["Food>Quality", "Service>General"])  # same text
    assert store.put("restaurants", [again], source="correction", owner="k1") == (1, 0)  # k1's own label
    assert store.put("restaurants", [again], source="correction", owner="k1") == (0, 1)  # idempotent per owner
    [imported] = store.labels("restaurants", OPERATOR)
    assert imported.label.stems == first.stems and imported.shared  # untouched by k1
    [seen_by_k1] = store.view("restaurants", "k1")
    assert seen_by_k1.label.stems == again.stems and seen_by_k1.owner == "k1" and not seen_by_k1.shared
    [seen_by_k2] = store.view("restaurants", "k2")  # k2 reads the operator's, never k1's
    assert seen_by_k2.label.stems == first.stems and seen_by_k2.shared
    assert store.view("laptops", "k1") == []  # per taxonomy
    assert store.count("restaurants", "k1") == 1 and store.owners("restaurants") == ["cli", "k1"]
    assert not store.delete("restaurants", first.key, "k2")  # not k2's to delete
    assert store.delete("restaurants", first.key, "k1") and not store.delete("restaurants", first.key, "k1")
    assert [s.owner for s in store.view("restaurants", "k1")] == [OPERATOR]  # the operator's again
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
        assert max(db.scalars(select(meta.c.version))) == SCHEMA_VERSION == 3
    assert GoldStore(store.engine).labels("restaurants") == []


SCHEMA_2_GOLD = """CREATE TABLE gold_labels (taxonomy VARCHAR(128) NOT NULL, text_key VARCHAR(64) NOT NULL,
    text TEXT NOT NULL, stems TEXT NOT NULL, polarity TEXT NOT NULL, source VARCHAR(32) NOT NULL,
    owner VARCHAR(32) NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
    PRIMARY KEY (taxonomy, text_key))"""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_schema_2_database_keeps_its_labels_with_their_owners(tmp_path, database):
    with (postgres_database() if database == "postgresql" else nullcontext(f"sqlite:///{tmp_path / 'j.db'}")) as url:
        old = JobStore(url, tmp_path)
        with old.engine.begin() as db:
            db.execute(meta.delete())
            db.execute(insert(meta).values(version=2))
            db.exec_driver_sql("DROP TABLE gold_labels")
            db.exec_driver_sql(SCHEMA_2_GOLD)
            db.exec_driver_sql("INSERT INTO gold_labels VALUES ('restaurants', 'abc', 'The soup was cold.', "
                               "'[\"Food>Quality\"]', '{}', 'import', 'cli', 1.0, 2.0)")
        old.close()
        store = JobStore(url, tmp_path)
        try:
            [kept] = GoldStore(store.engine).labels("restaurants", OPERATOR)
            assert kept.label.text == "The soup was cold." and kept.updated_at == 2.0
            # The new key: the same text may now be labelled by another owner as well.
            label = checked(RESTAURANTS, "The soup was cold.", ["Service>General"])
            assert GoldStore(store.engine).put("restaurants", [label], source="correction", owner="k1") == (1, 0)
        finally:
            store.close()
