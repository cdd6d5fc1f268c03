"""Reading the comments: CSV files as spreadsheets actually write them.

Excel exports arrive in cp1252 or with a UTF-8 BOM, with semicolons, with blank lines,
with columns named slightly differently; every one of these gets a clear message or is
handled and reported, never a traceback.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # latin-1 decodes anything: the last resort
DELIMITERS = ",;\t|"
SNIFF_BYTES = 64 * 1024
csv.field_size_limit(2**31 - 1)  # long posts are data, not an attack, in a file the user chose


class InputError(ValueError):
    """The file cannot be read as asked; the message says what to change."""


@dataclass
class Rows:
    """The texts to classify, keyed by data row number (1 = the first row under the header)."""

    texts: dict[int, str]
    encoding: str
    delimiter: str
    total: int  # data rows in the file
    skipped: list[int] = field(default_factory=list)  # rows whose text is empty
    records: dict[int, dict[str, str]] = field(default_factory=dict)  # every column of every row, for exports


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    for encoding in ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        name = "utf-8 (with BOM)" if encoding == "utf-8-sig" and raw.startswith(b"\xef\xbb\xbf") else encoding
        name = "utf-8" if name == "utf-8-sig" else name
        return text.replace("\x00", ""), name
    raise InputError(f"{path}: cannot decode the file")  # unreachable: latin-1 decodes every byte


def read_rows(path: Path, column: str) -> Rows:
    """Every non-empty text of `column`, with what was detected and what was skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"input file {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    text, encoding = _decode(raw, path)
    try:
        delimiter = csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    # newline="" semantics: only \r, \n and \r\n end a record, so a comment holding a form
    # feed or U+2028 (str.splitlines would cut there) stays one record.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip() for name in next(reader, [])]
    if not header:
        raise InputError(f"{path} is empty: expected a header row naming the columns, then one comment per row")
    if column not in header:
        close = [name for name in header if name.lower() == column.lower()]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(
            f"column {column!r} is not in {path}; its columns are: {', '.join(header)}{hint} (set --input-column)"
        )
    index = header.index(column)
    rows = Rows(texts={}, encoding=encoding, delimiter=delimiter, total=0)
    try:
        for number, record in enumerate(reader, start=1):
            rows.total = number
            if len(record) > len(header):
                raise InputError(
                    f"{path}, data row {number}: {len(record)} fields but the header names {len(header)}; "
                    f"a comment holding the delimiter {delimiter!r} must be quoted (\"...\")"
                )
            rows.records[number] = dict(zip(header, record))
            value = record[index].strip() if index < len(record) else ""
            if value:
                rows.texts[number] = value
            else:
                rows.skipped.append(number)
    except csv.Error as exc:
        raise InputError(f"{path}, data row {rows.total + 1}: not valid CSV ({exc})") from None
    return rows
