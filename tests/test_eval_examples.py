"""Few-shot examples drawn from labelled data into a taxonomy file, and shown to the model."""
import json

from click.testing import CliRunner

from classifier.eval.examples import main, pick_examples, with_examples
from classifier.eval.gold import Example, load_semeval, sample
from classifier.prompts import describe_node, flat_prompt
from classifier.taxonomy import load_taxonomy, taxonomy_from_dict
from tests.trees import TRAINING, training

PACE, CLARITY, CATERING = ("Delivery", "Pace"), ("Delivery", "Clarity"), ("Logistics", "Catering")


def example(n: int, text: str, *stems) -> Example:
    return Example(str(n), text, frozenset(stems))


LABELLED = [
    example(1, "Too fast", PACE),
    example(2, "Rushed through it all", PACE),
    example(3, "Slides were unclear", CLARITY),
    example(4, "Fast and unclear", PACE, CLARITY),
    example(5, "Rushed and the lunch was cold", PACE, CATERING),
    example(6, "Nothing to add"),
    example(7, "The trainer kept rushing through every single slide without ever stopping", PACE),
]


def test_leaves_get_texts_about_them_alone_and_parents_a_mix_of_their_children():
    picks = pick_examples(LABELLED, training(), per_node=2, max_words=8, seed=0)
    assert set(picks[PACE]) == {"Too fast", "Rushed through it all"}  # not the two-stem texts, not the long one
    assert picks[CLARITY] == ["Slides were unclear"]
    assert CLARITY in {stem for e in LABELLED if e.text in picks[("Delivery",)] for stem in e.stems}, \
        "a parent's examples go through more than one child"
    assert len(picks[("Delivery",)]) == 2 and "Rushed and the lunch was cold" not in picks[("Delivery",)]
    assert ("Logistics",) not in picks and ("Content",) not in picks  # nothing is about them alone


def test_examples_are_written_into_the_file_and_shown_beside_the_definition():
    raw = with_examples(TRAINING, {PACE: ["Too fast", 'He said "hurry"']})
    assert raw["children"][0]["children"][0]["examples"] == ["Too fast", 'He said "hurry"']
    assert "examples" not in TRAINING["children"][0]["children"][0], "the original is left alone"
    tree = taxonomy_from_dict(raw)
    assert tree.node(PACE).examples == ("Too fast", 'He said "hurry"')
    assert describe_node(tree.node(PACE)).splitlines()[-1] == '  Examples: "Too fast" | "He said \\"hurry\\""'
    assert 'Examples: "Too fast"' in flat_prompt(tree, "x", max_paths=3, reasoning=False).instructions
    spaced = {**TRAINING, "children": [*TRAINING["children"][:2], {"name": " Content ", "definition": "What"}]}
    assert taxonomy_from_dict(with_examples(spaced, {(" Content ",): ["Good"]})).node((" Content ",)).examples == (
        "Good",), "a name is matched as the loader keeps it, spaces and all"


def test_the_command_leaves_out_the_evaluation_sample(tmp_path):
    rows = [("1:0", "Too fast", "DELIVERY", "PACE"), ("2:0", "Way too rushed", "DELIVERY", "PACE"),
            ("3:0", "Far too quick", "DELIVERY", "PACE"), ("4:0", "Hurried", "DELIVERY", "PACE")]
    data = tmp_path / "gold.csv"
    data.write_text("sentence_id,text,opinions\n" + "".join(
        f'{i},{text},"[{{""entity"": ""{e}"", ""attribute"": ""{a}"", ""polarity"": ""negative""}}]"\n'
        for i, text, e, a in rows), encoding="utf-8")
    config = tmp_path / "topics.json"
    config.write_text(json.dumps(TRAINING), encoding="utf-8")
    out = tmp_path / "with-examples.json"
    result = CliRunner().invoke(main, ["--data", str(data), "--kind", "semeval", "--config", str(config),
                                       "--exclude-sample", "2", "--exclude-seed", "5", "--per-node", "4",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    held = {e.text for e in sample(load_semeval(data), 2, 5)}
    shown = set(load_taxonomy(out).node(PACE).examples)
    assert shown == {text for _, text, _, _ in rows} - held and len(shown) == 2
    assert "none from the 2 texts of the evaluation sample" in result.output
