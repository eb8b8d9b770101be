"""Small file operations with the atomicity the engine promises: a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_json_atomic(path: str, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, fsync it, then rename it into place."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: str) -> Any | None:
    """The JSON in `path`, or None when it does not exist."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def append_jsonl(path: str, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync, so a record is either whole or absent after a crash."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """Every whole record of a JSON-lines file; a torn last line (a killed writer) is ignored."""
    try:
        with open(path) as handle:
            lines = handle.read().split("\n")
    except FileNotFoundError:
        return []
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
