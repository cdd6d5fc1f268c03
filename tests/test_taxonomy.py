import copy
import json

import pytest

from classifier.taxonomy import TaxonomyError, format_path, load_taxonomy, parse_stem, taxonomy_from_dict
from tests.conftest import CONFIGS
from tests.trees import TRAINING, training


def test_navigation_helpers():
    tree = training()
    assert tree.node(("Delivery", "Pace")).keywords == ("rushed", "slow")
    assert tree.leaf_paths() == [
        ("Delivery", "Pace"), ("Delivery", "Clarity"), ("Logistics", "Catering"), ("Logistics", "Venue"), ("Content",)
    ]
    assert tree.is_complete_stem(("Content",)) and tree.is_complete_stem(("Logistics", "Venue"))
    assert not tree.is_complete_stem(("Logistics",)) and not tree.is_complete_stem(("Nope",))
    assert tree.depth == 2
    assert format_path("Training feedback", ("Delivery", "Pace")) == "Training feedback>Delivery>Pace"
    assert format_path(None, ("Delivery", "Pace")) == "Delivery>Pace"
    assert parse_stem("Delivery>Pace") == ("Delivery", "Pace")
    assert tree.in_file_order({("Content",), ("Delivery", "Pace"), ("Delivery",)}) == [
        ("Delivery",), ("Delivery", "Pace"), ("Content",)
    ]
    with pytest.raises(KeyError, match="Training feedback>Delivery>Nope"):
        tree.node(("Delivery", "Nope"))


def broken(mutate) -> dict:
    raw = copy.deepcopy(TRAINING)
    mutate(raw)
    return raw


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["children"][0]["children"][1].pop("name"), "under 'Training feedback>Delivery' has a missing or empty 'name'"),
        (lambda r: r["children"][1].update(name="  "), "under 'Training feedback' has a missing or empty 'name'"),
        (lambda r: r["children"][1].update(name="Delivery"), "'Training feedback' has duplicate child names ['Delivery']"),
        (lambda r: r["children"][0].update(keywords="rushed"), "'Training feedback>Delivery': 'keywords' must be a list"),
        (lambda r: r["children"][0].update(examples=["ok", 3]), "'Training feedback>Delivery': 'examples' must be a list"),
        (lambda r: r["children"][2].update(definition=3), "'Training feedback>Content': 'definition' must be a string"),
        (lambda r: r["children"][2].update(children={"name": "x"}), "'Training feedback>Content': 'children' must be a list"),
        (lambda r: r["children"][2].update(name="A>B"), "names may not contain '>'"),
        (lambda r: r["children"].append("Content"), "must be a JSON object, got str"),
        (lambda r: r.update(children=[]), "has no children"),
    ],
)
def test_each_problem_names_the_node(mutate, message):
    with pytest.raises(TaxonomyError) as err:
        taxonomy_from_dict(broken(mutate))
    assert message in str(err.value)


def test_absurd_depth_and_cycles_are_refused():
    deep = {"name": "n0"}
    node = deep
    for level in range(1, 12):
        node["children"] = [{"name": f"n{level}"}]
        node = node["children"][0]
    with pytest.raises(TaxonomyError, match="deeper than 8 levels"):
        taxonomy_from_dict(deep)
    cyclic = {"name": "root", "children": []}
    cyclic["children"].append(cyclic)
    with pytest.raises(TaxonomyError, match="contains itself"):
        taxonomy_from_dict(cyclic)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(TaxonomyError, match="does not exist"):
        load_taxonomy(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TaxonomyError, match="bad.json is not valid UTF-8 JSON"):
        load_taxonomy(bad)
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps(broken(lambda r: r["children"][1].update(name="Delivery"))))
    with pytest.raises(TaxonomyError, match=r"dup.json: node 'Training feedback' has duplicate"):
        load_taxonomy(dup)


@pytest.mark.parametrize("name", ["topics", "restaurants", "laptops", "20ng"])
def test_shipped_taxonomies_load_with_definitions_everywhere(name):
    tree = load_taxonomy(CONFIGS / f"{name}.json")
    assert tree.name == name
    missing = [format_path(None, p) for p, n in tree.nodes() if not n.definition]
    assert not missing, f"nodes without a definition: {missing}"


def test_unknown_fields_are_warnings_naming_the_node_and_names_are_kept_as_written(tmp_path, caplog):
    raw = broken(lambda r: r["children"][2].update(colour="red", name=" Content ", id=7))
    path = tmp_path / "prototype.json"
    path.write_text(json.dumps(raw))
    tree = load_taxonomy(path)
    assert tree.warnings == (
        "node 'Training feedback> Content ' has unknown field(s) ['colour', 'id'], ignored; "
        "known: ['children', 'definition', 'description', 'examples', 'keywords', 'name', 'scope']",
    )
    assert tree.warnings[0] in caplog.text and "prototype.json" in caplog.text
    assert tree.is_complete_stem((" Content ",)), "the name is kept exactly as the file writes it"
    assert tree.source == path.resolve()
