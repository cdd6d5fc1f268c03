"""The model's own probabilities over a few options, from its log-probabilities.

A step that must pick one of a few options (`A`, `B`, ... or words whose first tokens
differ) generates a single token under a grammar that allows only those; the engine
returns the top log-probabilities of that position, before the grammar masked them.
Renormalised over the options, they say how sure the model was of each, not just which
one won.
"""
from __future__ import annotations

import json
import math
from typing import Mapping, Sequence

from .errors import InvalidOutput

TOP_LOGPROBS = 20  # how many alternatives the engines return for the one generated token


def option_probabilities(top: Mapping[str, float], options: Sequence[str]) -> dict[str, float]:
    """Option -> probability, from a token -> log-probability map. A token (compared without
    surrounding spaces) counts for every option it begins, shared equally among them: an
    option written in several tokens (`har` + `assment`) is chosen by its first. Several
    tokens beginning one option add up. An option no token begins gets 0; if none is
    begun, the options share the mass equally."""
    mass = dict.fromkeys(options, 0.0)
    for token, logprob in top.items():
        key = token.strip()
        begun = [option for option in options if key and option.startswith(key)]
        for option in begun:
            if logprob > -math.inf:
                mass[option] += math.exp(logprob) / len(begun)
    total = sum(mass.values())
    if total <= 0:
        return {option: 1 / len(options) for option in options}
    return {option: value / total for option, value in mass.items()}


def choice_answer(text: str, top: Mapping[str, float] | None, options: Sequence[str]) -> dict[str, object]:
    """A choice item's value, `{"choice", "probabilities"}`, from the generated text (an
    option, or the first token of one) and the top log-probabilities of its first token;
    `probabilities` None where the server gave none (retrying would not bring them);
    `InvalidOutput` when the text begins no option."""
    picked = text.strip()
    begun = [option for option in options if picked and option.startswith(picked)]
    if not begun:
        raise InvalidOutput(f"expected one of {list(options)}, got {picked!r}")
    if not top:
        return {"choice": picked if picked in options else begun[0], "probabilities": None}
    probabilities = option_probabilities(top, options)
    choice = picked if picked in options else max(begun, key=probabilities.__getitem__)
    return {"choice": choice, "probabilities": probabilities}


# A JSON answer's tokens and their log-probabilities, as the backends return them.
Tokens = Sequence[tuple[str, float]]
_DECODER = json.JSONDecoder()


def spelled(text: str, tokens: Tokens) -> tuple[tuple[str, float], ...]:
    """The tokens that spell `text`: a stop token (`<|im_end|>`) is generated, not written."""
    kept = list(tokens)
    while kept and sum(len(t) for t, _ in kept) > len(text):
        kept.pop()
    return tuple(kept)


def _span_probability(tokens: Tokens, first: int, last: int) -> float:
    """exp of the summed log-probabilities of the tokens that overlap text[first..last]
    (inclusive): the model's probability of writing that stretch, given what came before."""
    start, total = 0, 0.0
    for token, logprob in tokens:
        end = start + len(token) - 1
        if start <= last and end >= first:
            total += logprob
        start = end + 1
    return math.exp(total)


def _value_start(text: str, key: str) -> int | None:
    """Where the value of a top-level `key` starts in compact or spaced JSON."""
    marker = text.find(json.dumps(key))
    if marker < 0:
        return None
    position = text.index(":", marker + len(json.dumps(key))) + 1
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _answer_text(tokens: Tokens) -> str | None:
    """The answer the tokens spell, if it is a JSON object (a multi-byte character split
    across tokens can leave them spelling something else)."""
    text = "".join(token for token, _ in tokens)
    try:
        return text if isinstance(json.loads(text), dict) else None
    except ValueError:
        return None


def listed_probabilities(tokens: Tokens, key: str) -> list[float] | None:
    """For each string in the list under `key`, the probability the model gave to writing
    it there: the tokens that overlap its characters (quotes excluded: under the grammar
    they are forced) and, from the second on, the separator before it (the choice to add
    one more). None when the tokens do not spell a JSON answer holding such a list."""
    text = _answer_text(tokens)
    start = _value_start(text, key) if text else None
    if text is None or start is None or text[start] != "[":
        return None
    probabilities, position, previous_end = [], start + 1, start + 1
    while True:
        while position < len(text) and text[position] in " ,\n\t":
            position += 1
        if position >= len(text) or text[position] != '"':
            return probabilities
        _, end = _DECODER.raw_decode(text, position)
        probabilities.append(_span_probability(tokens, previous_end if probabilities else position + 1, end - 2))
        previous_end = position = end


def value_probability(tokens: Tokens, key: str) -> float | None:
    """The probability the model gave to the value under a top-level `key` (`true` of a
    flag, `"Negative"` of an enum: a string's quotes excluded, the grammar forces them).
    None when the tokens do not spell a JSON answer with that key."""
    text = _answer_text(tokens)
    start = _value_start(text, key) if text else None
    if text is None or start is None:
        return None
    value, end = _DECODER.raw_decode(text, start)
    if isinstance(value, str) and value:
        return _span_probability(tokens, start + 1, end - 2)
    return _span_probability(tokens, start, end - 1)
