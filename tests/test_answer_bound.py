"""Every answer the service asks for has a longest form, and `max_tokens` is derived from it."""
from __future__ import annotations

import json

import pytest

from classifier.capabilities import CAPABILITIES
from classifier.hierarchy import RELEVANCE_SCHEMA, select_schema
from classifier.llm.schema import ANSWER_TOKEN_MARGIN, answer_token_bound

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"enum": ["a", "longest"]},
        "flag": {"type": "boolean"},
        "score": {"type": "integer", "minimum": 1, "maximum": 100},
        "notes": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 4}},
    },
}


def test_the_bound_is_the_longest_compact_answer_plus_the_margin():
    longest = {"label": "longest", "flag": False, "score": 100, "notes": ["xxxx", "xxxx"]}
    compact = json.dumps(longest, separators=(", ", ": "))  # the grammar's only separators
    assert answer_token_bound(SCHEMA) == len(compact) + ANSWER_TOKEN_MARGIN


@pytest.mark.parametrize(("part", "says"), [
    ({"type": "string"}, "answer.x is a string without maxLength"),
    ({"type": "array", "items": {"type": "boolean"}}, "answer.x is an array without maxItems"),
    ({"type": "integer"}, "answer.x (integer) has no length bound"),
])  # fmt: skip
def test_an_unbounded_part_is_named(part, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        answer_token_bound({"type": "object", "properties": {"x": part}})


def test_every_schema_the_service_sends_is_bounded():
    bounds = {name: c.max_tokens for name, c in CAPABILITIES.items() if hasattr(c, "max_tokens")}
    assert set(bounds) == set(CAPABILITIES) - {"classification"}
    assert all(50 < bound < 2500 for bound in bounds.values()), bounds
    assert answer_token_bound(RELEVANCE_SCHEMA) < 600
    assert answer_token_bound(select_schema(["A", "B"], max_paths=3, reasoning=True)) < 300
