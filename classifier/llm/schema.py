"""Parsing and checking model output against the JSON schema it was decoded under.

Constrained decoding makes output valid by construction, but a generation cut off by
`max_tokens` or a server that ignores `response_format` can still return bad JSON;
both backends check here so a bad item becomes a per-item error, never a crash.
"""
from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel
from jsonschema.exceptions import ValidationError

from .base import JSONSchema
from .errors import InvalidOutput


def parse_output(text: str, schema: JSONSchema) -> dict[str, Any]:
    """Return the parsed object, or raise `InvalidOutput` saying what was wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        snippet = text[:120] + ("..." if len(text) > 120 else "")
        raise InvalidOutput(f"model output is not JSON ({exc.msg}): {snippet!r}") from exc
    try:
        Draft202012Validator(schema).validate(value)
    except ValidationError as exc:
        raise InvalidOutput(f"model output does not match the schema: {exc.message}") from exc
    return value


# Tokens beyond the answer's characters: the end-of-sequence token and a margin for a
# tokenizer that splits the structural characters oddly.
ANSWER_TOKEN_MARGIN = 8


def answer_token_bound(schema: JSONSchema) -> int:
    """The most tokens an answer valid under `schema` can take, to use as `max_tokens`, so
    a generation can end only by finishing its JSON, never by being cut.

    It is the longest JSON the schema admits without free whitespace, in characters, counting
    the separators as ", " and ": " (the engine writes "," and ":", or with xgrammar 0.2.8 a
    space after the comma), plus a margin. Under a `maxLength`
    the grammar admits no escapes, and a byte-level tokenizer spends at most one token per
    character on text it has merges for (Latin scripts; a rare character outside them can
    cost up to one token per UTF-8 byte). `ValueError` names an unbounded part."""
    return _longest(schema, "answer") + ANSWER_TOKEN_MARGIN


def _longest(schema: JSONSchema, where: str) -> int:
    if "enum" in schema:
        return max(len(json.dumps(value, ensure_ascii=False)) for value in schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        members = [len(json.dumps(name)) + 2 + _longest(sub, f"{where}.{name}") for name, sub in properties.items()]
        return 2 + sum(members) + 2 * max(0, len(members) - 1)
    if kind == "array":
        if "maxItems" not in schema:
            raise ValueError(f"{where} is an array without maxItems: its answer has no length bound")
        items = schema["maxItems"]
        return 2 + items * _longest(schema["items"], f"{where}[]") + 2 * max(0, items - 1)
    if kind == "string":
        if "maxLength" not in schema:
            raise ValueError(f"{where} is a string without maxLength: its answer has no length bound")
        return 2 + schema["maxLength"]
    if kind == "boolean":
        return len("false")
    if kind == "integer" and "minimum" in schema and "maximum" in schema:
        return max(len(str(schema["minimum"])), len(str(schema["maximum"])))
    raise ValueError(f"{where} ({kind}) has no length bound: give integers a minimum and maximum")


def schema_for(model: type[BaseModel]) -> JSONSchema:
    """The JSON schema of a pydantic model in the form grammar compilers accept.

    References are inlined and titles dropped; the schema keeps only keywords that
    vLLM's structured-output backends implement (no `uniqueItems`: callers de-duplicate).
    """
    raw = model.model_json_schema()
    definitions = raw.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
        out = {k: inline(v) for k, v in node.items() if k not in ("title", "description", "properties")}
        if "properties" in node:
            out["properties"] = {name: inline(v) for name, v in node["properties"].items()}
            out["additionalProperties"] = False
        return out

    return inline(raw)
