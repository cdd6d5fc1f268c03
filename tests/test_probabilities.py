"""Option probabilities from top log-probabilities, on hand-made cases with exact numbers."""
import math

import pytest

from classifier.llm.probabilities import option_probabilities


def test_renormalised_over_the_options_only():
    top = {"A": math.log(0.6), "B": math.log(0.2), "the": math.log(0.15), "C": math.log(0.05)}
    got = option_probabilities(top, ["A", "B", "C", "D"])
    assert got == pytest.approx({"A": 0.6 / 0.85, "B": 0.2 / 0.85, "C": 0.05 / 0.85, "D": 0.0})
    assert sum(got.values()) == pytest.approx(1.0)


def test_spellings_of_one_option_add_up_and_minus_infinity_counts_nothing():
    top = {"A": math.log(0.3), " A": math.log(0.1), "B": math.log(0.4), "C": -math.inf}
    assert option_probabilities(top, ["A", "B", "C"]) == pytest.approx({"A": 0.5, "B": 0.5, "C": 0.0})


def test_no_option_in_the_top_shares_the_mass_equally():
    assert option_probabilities({"x": -0.1}, ["A", "B"]) == {"A": 0.5, "B": 0.5}
