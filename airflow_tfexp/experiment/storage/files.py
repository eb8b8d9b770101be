"""JSON files with the atomicity the engine promises, on a local disk or GCS: a reader never
sees half a file, and a torn last line of a JSON-lines file (a killed writer) is ignored."""

from __future__ import annotations

import json
from typing import Any

from airflow_tfexp.experiment.storage.fs import filesystem


def write_json_atomic(path: str, data: Any) -> None:
    filesystem(path).write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def read_json(path: str) -> Any | None:
    """The JSON in `path`, or None when it does not exist."""
    raw = filesystem(path).read_bytes(path)
    return None if raw is None else json.loads(raw)


def append_jsonl(path: str, record: dict[str, Any]) -> None:
    filesystem(path).append_line(path, json.dumps(record, sort_keys=True))


def read_jsonl(path: str) -> list[dict[str, Any]]:
    raw = filesystem(path).read_bytes(path)
    return [] if raw is None else parse_jsonl(raw, path)


def parse_jsonl(raw: bytes, path: str) -> list[dict[str, Any]]:
    """The whole records of a JSON-lines file's content (`path` only names it in errors)."""
    lines = raw.decode().split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # torn final line without its newline
                continue
            raise ValueError(f"{path}: line {number} is not JSON: {line[:80]!r}") from None
    return records
