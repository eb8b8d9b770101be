"""JSON files with the atomicity the engine promises, on a local disk or GCS: a reader never
sees half a file, and a torn line of a JSON-lines file (a killed writer, a full disk) is skipped
with a warning, never read as a record nor in the way of the records after it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
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
    """The whole records of a JSON-lines file's content (`path` names it in warnings)."""
    return [record for _, record in iter_jsonl(raw, path)]


def iter_jsonl(
    raw: bytes,
    path: str,
    problem: Callable[[str], None] | None = None,
    limit: int | None = None,
    limit_reason: str = "",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each JSON object line of a JSON-lines file's content; every
    reader of records goes through it. A line that is not a JSON object (a record torn by a
    full disk or a kill, then followed by later appends) is reported to `problem` (default: a
    warning in the log) naming the file and line, and skipped: it never hides the records after
    it. At most `limit` records are read (the rest reported, with `limit_reason`)."""
    report = problem or log.warning
    lines = raw.decode("utf-8", "replace").split("\n")
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if limit is not None and count >= limit:
            reason = limit_reason or f"at most {limit:,} records are read"
            report(f"{path}: line {number} and on not read, {reason}")
            return
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            if number != len(lines):  # a final line without its newline is still being written
                report(f"{path}: line {number} is not valid JSON ({err}), skipped: {line[:80]!r}")
            continue
        if not isinstance(record, dict):
            report(f"{path}: line {number} is not a JSON record (an object), skipped")
            continue
        count += 1
        yield number, record
