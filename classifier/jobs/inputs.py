"""A batch's input file as requests: OpenAI's batch JSONL, or a CSV of comments.

JSONL: one `{"custom_id", "method": "POST", "url": "/v1/classify", "body": <a /classify
request>}` per line (the error file's lines have this shape too, so they can be sent again).
CSV: one request per row; the batch's metadata names the text column (`text_column`,
default `text`), the capabilities (`capabilities`, comma-separated) and the column that
gives `custom_id` (`id_column`; default the row number).

Every problem is collected with the line it is on and what to fix, so a user fixes a file
in one round; `check` validates a body the way `POST /classify` would.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from ..batch.inputs import InputError, read_rows
from .store import Line

URLS = ("/v1/classify", "/classify")
MAX_LISTED_ERRORS = 20

Check = Callable[[dict[str, Any]], None]  # raises ValueError saying what is wrong with a /classify body


class BadInput(ValueError):
    """The file cannot become requests; `errors` are OpenAI-style `{code, message, line}`."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(e["message"] for e in errors))
        self.errors = errors


def _error(message: str, line: int | None = None) -> dict[str, Any]:
    return {"code": "invalid_request", "message": message, "param": None, "line": line}


def kind_of(path: Path, filename: str) -> str:
    """`jsonl` or `csv`, from the name, else from the content; `BadInput` for neither."""
    suffix = Path(filename).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    head = path.read_bytes()[:4096]
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = ""
    if text.lstrip().startswith("{"):
        return "jsonl"
    first = text.split("\n", 1)[0].rstrip("\r")
    if first and any(sep in first for sep in ",;\t|") and "\x00" not in text:
        return "csv"
    raise BadInput([_error(f"{filename} is neither JSONL (one JSON request per line) nor CSV (a header row, then "
                           "one comment per row); upload one of those")])


def json_lines(text: str) -> list[str]:
    """JSONL's lines: split on "\n" alone (and a "\r" before it), never on the other line
    breaks `str.splitlines` knows (U+2028, \x85, \x0b, ...), which JSON strings may hold."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def read_requests(path: Path, filename: str, metadata: Mapping[str, str], check: Check) -> list[Line]:
    """The file's requests, or `BadInput` listing every problem (the first few)."""
    kind = kind_of(path, filename)
    requests, errors = (_jsonl if kind == "jsonl" else _csv)(path, metadata, check)
    if not errors and not requests:
        errors = [_error(f"{filename} holds no request")]
    if errors:
        more = len(errors) - MAX_LISTED_ERRORS
        listed = errors[:MAX_LISTED_ERRORS] + ([_error(f"and {more} more problems")] if more > 0 else [])
        raise BadInput(listed)
    return requests


def _jsonl(path: Path, metadata: Mapping[str, str], check: Check) -> tuple[list[Line], list[dict]]:
    requests: list[Line] = []
    errors: list[dict] = []
    seen: set[str] = set()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [_error(f"the file is not UTF-8 ({exc.reason} at byte {exc.start})")]
    for number, raw in enumerate(json_lines(text), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(_error(f"line {number} is not JSON ({exc.msg}); each line is one request object", number))
            continue
        except RecursionError:
            errors.append(_error(f"line {number} is nested too deeply to read; send a flat request object", number))
            continue
        problem = _request_problem(entry, seen)
        if problem is None:
            try:
                check(entry["body"])
            except ValueError as exc:
                problem = f"body: {exc}"
        if problem:
            errors.append(_error(f"line {number}: {problem}", number))
            continue
        seen.add(entry["custom_id"])
        requests.append(Line(number, entry["custom_id"], entry["body"]))
    return requests, errors


def _request_problem(entry: Any, seen: set[str]) -> str | None:
    if not isinstance(entry, dict):
        return "expected an object like {\"custom_id\": \"r1\", \"method\": \"POST\", \"url\": \"/v1/classify\", \"body\": {...}}"
    custom_id = entry.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "custom_id is missing or not a string"
    if custom_id in seen:
        return f"custom_id {custom_id!r} is used twice; each must be unique"
    if entry.get("method", "POST") != "POST":
        return f"method is {entry.get('method')!r}; only POST is supported"
    if entry.get("url") not in URLS:
        return f"url is {entry.get('url')!r}; it must be /v1/classify"
    if not isinstance(entry.get("body"), dict):
        return "body is missing or not an object: it is a /classify request, like {\"texts\": [\"...\"]}"
    return None


def _csv(path: Path, metadata: Mapping[str, str], check: Check) -> tuple[list[Line], list[dict]]:
    column, id_column = metadata.get("text_column", "text"), metadata.get("id_column")
    capabilities = [c.strip() for c in metadata.get("capabilities", "").split(",") if c.strip()] or None
    try:
        rows = read_rows(path, column)
    except InputError as exc:
        return [], [_error(f"{exc} (the text column comes from the batch's metadata.text_column)".replace(str(path), "the file"))]
    if id_column and rows.records and id_column not in next(iter(rows.records.values())):
        return [], [_error(f"metadata.id_column {id_column!r} is not a column of the file")]
    body_extra: dict[str, Any] = {"capabilities": capabilities} if capabilities else {}
    for name in ("taxonomy", "project_name"):
        if metadata.get(name):
            body_extra[name] = metadata[name]
    try:
        check({"texts": ["x"], **body_extra})
    except ValueError as exc:
        return [], [_error(f"metadata: {exc}")]
    requests: list[Line] = []
    seen: set[str] = set()
    for number, record in rows.records.items():
        custom_id = record.get(id_column, "") if id_column else str(number)
        if custom_id in seen or not custom_id:
            return [], [_error(f"row {number}: id {custom_id!r} is empty or used twice in column {id_column!r}", number)]
        seen.add(custom_id)
        requests.append(Line(number, custom_id, {"texts": [record.get(column, "")], **body_extra}))
    return requests, []
