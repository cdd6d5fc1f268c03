"""Gold loaders on the first rows of each shared file (copied to a temporary CSV), and
whole-file agreement of every gold stem with the taxonomy file in configs/."""
import csv
from itertools import islice
from pathlib import Path

import pytest

from classifier.eval.gold import Example, excluding, load_20ng, load_semeval, sample
from classifier.taxonomy import load_taxonomy
from tests.conftest import CONFIGS


def head(source: Path, rows: int, tmp_path: Path) -> Path:
    """The header and the first `rows` records of a CSV (records may span lines)."""
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        records = list(islice(reader, rows + 1))
    out = tmp_path / source.name
    with out.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(records)
    return out


def test_semeval_restaurants_rows(shared_data, tmp_path):
    examples = load_semeval(head(shared_data / "semeval16_restaurants_train.csv", 4, tmp_path))
    assert [e.id for e in examples] == ["1004293:0", "1004293:1", "1004293:2", "1004293:3"]
    assert examples[0] == Example(
        id="1004293:0",
        text="Judging from previous posts this used to be a good place, but not any longer.",
        stems=frozenset({("Restaurant", "General")}),
        polarity={("Restaurant", "General"): "Negative"},
        flags={"alerts": False, "trend": False},  # an ordinary comment: no alert, no trend
    )
    assert examples[3].stems == {("Food", "Quality"), ("Food", "Style options")}  # multi-label
    assert examples[3].polarity == {("Food", "Quality"): "Negative", ("Food", "Style options"): "Negative"}


def test_semeval_laptops_rows_keep_sentences_without_opinion(shared_data, tmp_path):
    examples = load_semeval(head(shared_data / "semeval16_laptops_train.csv", 4, tmp_path))
    assert examples[0].text == "Being a PC user my whole life...."
    assert examples[0].stems == frozenset() and examples[0].polarity == {}
    assert examples[3].polarity == {("Cpu", "Operation performance"): "Positive", ("Graphics", "General"): "Positive"}


def test_semeval_gives_mixed_when_one_category_has_two_polarities(tmp_path):
    csv_file = tmp_path / "mixed.csv"
    opinions = (
        '"[{""entity"": ""FOOD"", ""attribute"": ""QUALITY"", ""polarity"": ""positive""}, '
        '{""entity"": ""FOOD"", ""attribute"": ""QUALITY"", ""polarity"": ""negative""}]"'
    )
    csv_file.write_text(f"sentence_id,text,opinions\n1:0,Good naan bad dhal,{opinions}\n", encoding="utf-8")
    [example] = load_semeval(csv_file)
    assert example.polarity == {("Food", "Quality"): "Mixed"}


def test_20ng_rows_three_deep_and_two_deep(shared_data, tmp_path):
    source = head(shared_data / "20ng_train.csv", 1, tmp_path)
    [first] = load_20ng(source)
    assert first.id == "train/alt.atheism/49960"
    assert first.stems == {("alt", "alt.atheism")}, "l3 equal to l2 ends the stem at l2"
    assert first.text.startswith("Subject: Alt.Atheism FAQ: Atheist Resources\n\nArchive-name: atheism/resources")
    assert first.polarity == {}
    three_deep = tmp_path / "deep.csv"
    three_deep.write_text("id,subject,text,l1,l2,l3\n7,,Mac IIci,comp,comp.sys,comp.sys.mac.hardware\n")
    [deep] = load_20ng(three_deep)
    assert deep.stems == {("comp", "comp.sys", "comp.sys.mac.hardware")} and deep.text == "Mac IIci"


@pytest.mark.parametrize(
    ("data", "config", "loader", "rows"),
    [
        ("semeval16_restaurants_train.csv", "restaurants.json", load_semeval, 2000),
        ("semeval16_laptops_train.csv", "laptops.json", load_semeval, 2500),
        ("20ng_train.csv", "20ng.json", load_20ng, 11314),
    ],
)
def test_every_gold_stem_is_a_complete_stem_of_its_taxonomy(shared_data, data, config, loader, rows):
    examples = loader(shared_data / data)
    taxonomy = load_taxonomy(CONFIGS / config)
    assert len(examples) == rows
    assert not [s for e in examples for s in e.stems if not taxonomy.is_complete_stem(s)]


def test_sample_is_reproducible_and_zero_means_all():
    examples = [Example(id=str(i), text=str(i), stems=frozenset()) for i in range(50)]
    assert sample(examples, 10, seed=7) == sample(examples, 10, seed=7)
    assert sample(examples, 10, seed=7) != sample(examples, 10, seed=8)
    assert len(sample(examples, 10, seed=7)) == 10 and sample(examples, 0, seed=7) == examples


def test_excluding_leaves_out_exactly_the_named_sample():
    examples = [Example(str(k), f"text {k}", frozenset()) for k in range(50)]
    held = {e.id for e in sample(examples, 10, 3)}
    rest = excluding(examples, 10, 3)
    assert len(rest) == 40 and not held & {e.id for e in rest}
    assert excluding(examples, 0, 3) == examples
