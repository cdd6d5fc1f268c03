"""The journal: every result the run has produced, one JSON line per row, synced per chunk.

A run appends a chunk's lines and fsyncs before it counts the chunk as done, so a crash
(SIGKILL, power) loses at most the chunk in flight. The first line records what the run
was (input, column, capabilities, taxonomy); a rerun of something else refuses to mix
its results in. A last line cut mid-write is dropped (and cut off the file) on load.
When a row appears twice (it failed, and a rerun retried it), the later line wins.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

FORMAT_VERSION = 1


def complete_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each whole line's entry (the header first) with the bytes read through it; a line cut
    by a crash ends the reading: everything before it stands."""
    good = 0
    with path.open("rb") as handle:
        for line in handle:
            try:
                entry = json.loads(line) if line.endswith(b"\n") else None
            except json.JSONDecodeError:
                entry = None
            if entry is None:
                return
            good += len(line)
            yield good, entry


def read_journal(path: Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """A journal's header and the latest result per row, as a run left it ({} for no header)."""
    header: dict[str, Any] = {}
    results: dict[int, dict[str, Any]] = {}
    for number, (_, entry) in enumerate(complete_lines(path)):
        if number == 0:
            header = entry
        else:
            results[entry["row"]] = entry["result"]
    return header, results


class JournalMismatch(ValueError):
    """The journal was written by a run with other settings."""


class Journal:
    def __init__(self, path: Path, meta: dict[str, Any], run: dict[str, Any] | None = None) -> None:
        self.path = path
        self.meta = {"journal": FORMAT_VERSION, **meta}  # compared on resume: a run with other settings is refused
        self.run = run or {}  # recorded, never compared: how the run was started (`classifier.replay` reads it)
        self.results: dict[int, dict[str, Any]] = {}  # row -> latest result

    def open(self, resume: bool) -> None:
        """Load what an earlier run wrote (if resuming) or start a fresh journal."""
        if resume and self.path.exists():
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write([self._header()], mode="w")

    def _load(self) -> None:
        good = 0  # bytes up to the end of the last complete line
        for number, (good, entry) in enumerate(complete_lines(self.path)):
            if number == 0:
                self._check_meta(entry)
            else:
                self.results[entry["row"]] = entry["result"]
        if good == 0:  # not even the header survived
            self._write([self._header()], mode="w")
        else:
            os.truncate(self.path, good)

    def _header(self) -> dict[str, Any]:
        return {**self.meta, "run": self.run}

    def _check_meta(self, found: dict[str, Any]) -> None:
        differs = [f"{key}: {found.get(key)!r} then, {value!r} now" for key, value in self.meta.items()
                   if found.get(key) != value]
        if differs:
            raise JournalMismatch(
                f"{self.path} was written by a different run ({'; '.join(differs)}); rerun with "
                f"--no-resume to start over, or choose another output path"
            )

    def append(self, results: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """Record a chunk's results; they are on disk when this returns."""
        entries = [{"row": row, "result": result} for row, result in results]
        self._write(entries, mode="a")
        for entry in entries:
            self.results[entry["row"]] = entry["result"]

    def _write(self, entries: list[dict[str, Any]], mode: str) -> None:
        with self.path.open(mode, encoding="utf-8") as handle:
            handle.writelines(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
            handle.flush()
            os.fsync(handle.fileno())
