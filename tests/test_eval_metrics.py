"""The evaluation metrics on hand-made cases, with the numbers worked out by hand."""
import pytest

from classifier.eval.metrics import (
    PRF,
    exact_path_accuracy,
    level_scores,
    majority_stems,
    polarity_accuracy,
    prefixes,
)

A, B, C = ("A",), ("B",), ("C",)
AX, AW, BY, CZ = ("A", "x"), ("A", "w"), ("B", "y"), ("C", "z")

# Four texts of a two-level tree. Predictions hold every accepted node, gold only stems.
PREDICTED = [{A, AX, C, CZ}, {A, AW}, {B, BY}, set()]
GOLD = [{AX, BY}, {AX}, set(), set()]


def approx(precision, recall, f1):
    return PRF(pytest.approx(precision), pytest.approx(recall), pytest.approx(f1))


def test_prefixes_name_each_level_by_its_whole_path_and_skip_short_paths():
    assert prefixes({("A", "x", "1"), ("B",)}, 2) == {("A", "x")}
    assert prefixes({("A", "General"), ("B", "General")}, 2) == {("A", "General"), ("B", "General")}
    assert prefixes({AX, AW}, 1) == {A}


def test_level_one_micro_and_macro():
    # text 1: TP A, FP C, FN B; text 2: TP A; text 3: FP B; text 4: nothing.
    scores = level_scores(PREDICTED, GOLD, 1)
    assert scores.micro == approx(2 / 4, 2 / 3, 4 / 7)
    # A: 1/1/1; B: tp 0, fp 1, fn 1 -> 0; C: fp 1 only -> 0 (recall 0 by zero division).
    assert scores.macro == approx(1 / 3, 1 / 3, 1 / 3)
    assert (scores.labels, scores.gold, scores.predicted) == (3, 3, 4)


def test_level_two_micro_and_macro():
    # text 1: TP A>x, FP C>z, FN B>y; text 2: FP A>w, FN A>x; text 3: FP B>y.
    scores = level_scores(PREDICTED, GOLD, 2)
    assert scores.micro == approx(1 / 4, 1 / 3, 2 / 7)
    # A>x: P 1, R 1/2, F1 2/3; B>y, C>z, A>w: all 0.
    assert scores.macro == approx(1 / 4, 1 / 8, 1 / 6)
    assert (scores.labels, scores.gold, scores.predicted) == (4, 3, 4)


def test_a_walk_that_stops_early_scores_the_levels_it_reached():
    gold = [{("c", "c1", "c2")}, {("a", "a1")}]  # the second branch is two deep
    predicted = [{("c",), ("c", "c1")}, {("a",), ("a", "a1")}]
    assert level_scores(predicted, gold, 2).micro == approx(1, 1, 1)
    level3 = level_scores(predicted, gold, 3)
    assert level3.micro == approx(0, 0, 0)
    assert (level3.labels, level3.gold, level3.predicted) == (1, 1, 0)


def test_nothing_to_score_is_zero_not_a_crash():
    scores = level_scores([set()], [set()], 1)
    assert scores.micro == PRF(0.0, 0.0, 0.0) and scores.macro == PRF(0.0, 0.0, 0.0) and scores.labels == 0


def test_exact_path_accuracy_compares_leaf_sets_and_empty_equals_empty():
    stems = [{AX, CZ}, {AW}, {BY}, set()]
    assert exact_path_accuracy(stems, GOLD) == 1 / 4
    assert exact_path_accuracy([{AX, BY}, {AX}], [{BY, AX}, {AX}]) == 1.0


def test_lengths_must_agree():
    with pytest.raises(ValueError):
        level_scores([set()], [], 1)
    with pytest.raises(ValueError):
        exact_path_accuracy([], [set()])


def test_polarity_counts_only_correctly_found_stems_and_a_missing_answer_is_wrong():
    predicted = [{AX: "Positive", CZ: "Negative"}, {AX: None}, {BY: "Neutral"}, {AX: "Mixed", BY: "Negative"}]
    gold = [{AX: "Positive", BY: "Negative"}, {AX: "Negative"}, {}, {AX: "Mixed", BY: "Positive"}]
    # pairs: text 1 A>x right; text 2 A>x missing (wrong); text 4 A>x right, B>y wrong.
    score = polarity_accuracy(predicted, gold)
    assert (score.accuracy, score.pairs) == (2 / 4, 4)
    assert polarity_accuracy([{}], [{AX: "Positive"}]) == polarity_accuracy([], [])


def test_majority_stems_is_the_most_frequent_gold_set_first_seen_on_a_tie():
    assert majority_stems([{AX}, {BY, AX}, {AX, BY}, set()]) == {AX, BY}
    assert majority_stems([{BY}, {AX}, set()]) == {BY}
    assert majority_stems([]) == frozenset()


def test_hierarchical_scores_credit_the_right_parent_of_a_wrong_leaf():
    from classifier.eval.metrics import hierarchical_scores, with_ancestors

    assert with_ancestors([("A", "B", "C")]) == {("A",), ("A", "B"), ("A", "B", "C")}
    predicted = [[("Food", "Prices")], [("Service", "General"), ("Ambience", "General")], []]
    gold = [[("Food", "Quality")], [("Service", "General")], [("Drinks", "Quality")]]
    # text 1: P-hat {Food, Food>Prices}, T-hat {Food, Food>Quality}: tp 1, fp 1, fn 1
    # text 2: P-hat {Service, Service>General, Ambience, Ambience>General}, T-hat {Service, Service>General}: tp 2, fp 2
    # text 3: nothing predicted, T-hat {Drinks, Drinks>Quality}: fn 2
    scores = hierarchical_scores(predicted, gold)
    assert scores.precision == pytest.approx(3 / 6) and scores.recall == pytest.approx(3 / 6)
    assert scores.f1 == pytest.approx(0.5)
    assert hierarchical_scores([[]], [[]]).f1 == 0.0
