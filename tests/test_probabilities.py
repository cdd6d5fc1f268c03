"""Option probabilities from top log-probabilities, on hand-made cases with exact numbers."""
import math

import pytest

from classifier.llm.probabilities import listed_probabilities, option_probabilities, spelled, value_probability


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


def tokens(*pieces: tuple[str, float]) -> list[tuple[str, float]]:
    """(text, probability) pieces as the backends return them: (text, log-probability)."""
    return [(text, math.log(p)) for text, p in pieces]


SELECT = tokens(('{"', 1.0), ("topics", 1.0), ('":["', 0.9), ("Food", 0.6), ('","', 0.5), ("Serv", 0.8),
                ("ice", 1.0), ('"]}', 1.0))


def test_each_listed_value_gets_its_own_probability_and_the_choice_to_add_it():
    # Food: its token only (the quote-carrying opener is format, not choice); Service: the
    # separator that chose to add a second topic, then its two tokens.
    assert listed_probabilities(SELECT, "topics") == pytest.approx([0.6, 0.5 * 0.8 * 1.0])


def test_spaced_json_and_a_flag_value():
    spaced = tokens(('{"topics": [', 1.0), ('"A', 0.7), ('", "', 0.4), ('B"', 0.5), ("]}", 1.0))
    assert listed_probabilities(spaced, "topics") == pytest.approx([0.7, 0.2])
    flag = tokens(('{"is_relevant":', 1.0), ("true", 0.8), (',"confidence":', 1.0), ("4", 0.3), ("}", 1.0))
    assert value_probability(flag, "is_relevant") == pytest.approx(0.8)
    assert value_probability(flag, "confidence") == pytest.approx(0.3)


@pytest.mark.parametrize("pieces", [
    [],  # a backend that returned no tokens
    [('{"topics":["Fo', 0.5), ("\ufffd", 0.5)],  # a character split across tokens: not the answer
])
def test_tokens_that_do_not_spell_the_answer_give_none(pieces):
    assert listed_probabilities(tokens(*pieces), "topics") is None
    assert value_probability(tokens(*pieces), "is_relevant") is None


def test_a_missing_key_gives_none():
    assert value_probability(SELECT, "is_relevant") is None
    assert listed_probabilities(tokens(('{"is_relevant":true}', 1.0)), "topics") is None


def test_a_generated_stop_token_is_not_part_of_what_the_tokens_spell():
    generated = [('{"a":1}', -0.1), ("<|im_end|>", 0.0)]
    assert spelled('{"a":1}', generated) == (('{"a":1}', -0.1),)
    assert spelled('{"a":1}', generated[:1]) == (('{"a":1}', -0.1),)


def test_an_enum_string_value_leaves_out_its_forced_quotes():
    # `"Food>Quality":"Positive"` then `"Service>General":"Negative"`: each value is its own
    # word's tokens; the quotes around it ride on format tokens the grammar forces.
    answer = tokens(('{"', 1.0), ("Food>Quality", 0.2), ('":"', 0.3), ("Pos", 0.9), ("itive", 0.8),
                    ('","', 0.5), ("Service>General", 0.1), ('":"', 0.3), ("Negative", 0.7), ('"}', 0.4))
    assert value_probability(answer, "Food>Quality") == pytest.approx(0.9 * 0.8)
    assert value_probability(answer, "Service>General") == pytest.approx(0.7)
