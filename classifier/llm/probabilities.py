"""The model's own probabilities over a few one-token options, from its log-probabilities.

A step that must pick one of a few options, each written as one token (`A`, `B`, ...),
generates a single token under a grammar that allows only those; the engine returns the
top log-probabilities of that position, before the grammar masked them. Renormalised over
the options, they say how sure the model was of each, not just which one won.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from .errors import InvalidOutput

TOP_LOGPROBS = 20  # how many alternatives the engines return for the one generated token


def option_probabilities(top: Mapping[str, float], options: Sequence[str]) -> dict[str, float]:
    """Option -> probability, from a token -> log-probability map (tokens compared without
    surrounding spaces; several tokens spelling one option add up). An option absent from
    `top` gets 0; if none is present, the options share the mass equally."""
    mass = dict.fromkeys(options, 0.0)
    for token, logprob in top.items():
        key = token.strip()
        if key in mass and logprob > -math.inf:
            mass[key] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        return {option: 1 / len(options) for option in options}
    return {option: value / total for option, value in mass.items()}


def choice_answer(text: str, top: Mapping[str, float] | None, options: Sequence[str]) -> dict[str, object]:
    """A choice item's value, `{"choice", "probabilities"}`, from the generated text and the
    top log-probabilities of its token; `InvalidOutput` when either is not usable."""
    picked = text.strip()
    if picked not in options or not top:
        raise InvalidOutput(f"expected one of {list(options)} with log-probabilities, got {picked!r}")
    return {"choice": picked, "probabilities": option_probabilities(top, options)}
