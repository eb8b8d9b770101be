"""JSON files with the atomicity the engine promises, on a local disk or GCS: a reader never
sees half a file, and a torn line of a JSON-lines file (a killed writer, a full disk) is skipped
with a warning, never read as a record nor in the way of the records after it."""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow_tfexp.experiment.storage.fs import filesystem

log = logging.getLogger(__name__)


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
    """The whole records of a JSON-lines file's content (`path` names it in warnings). A line
    that is not a JSON object (a record torn by a full disk or a kill, then followed by later
    appends) is skipped with a warning naming the file and line: it never hides the records
    after it."""
    lines = raw.decode("utf-8", "replace").split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif number != len(lines):  # a final line without its newline is still being written
            log.warning("%s: line %d is not a JSON record, skipped: %r", path, number, line[:80])
    return records
