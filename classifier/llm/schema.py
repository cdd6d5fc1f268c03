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
