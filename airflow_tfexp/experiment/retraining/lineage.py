"""A run's lineage: `model_dir/run.json`, what made this model and what became of it.

Sections (each written by the step that knows it): `config`, `params`, `data_events` (the
asset events that triggered the run), `warm_start` (source or null), `evaluations`,
`blessing`, `published`. Every update rewrites the file whole (atomic, compare-and-swap),
replacing only its own sections, so a retried step rewrites the same values: updates are
idempotent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.experiment.storage.fs import filesystem, join

LINEAGE_FILE = "run.json"


def read_lineage(model_dir: str) -> dict[str, Any]:
    path = join(model_dir, LINEAGE_FILE)
    text = filesystem(model_dir).read_bytes(path)
    return _parse(text, path) if text else {}


def _parse(text: bytes, path: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except ValueError:
        raise ValueError(f"{path} is not valid JSON.") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a lineage record (a JSON object).")
    return record


def update_lineage(model_dir: str, sections: Mapping[str, Any]) -> dict[str, Any]:
    """Set these sections (others are kept) and return the whole record. Compare-and-swap:
    steps updating other sections at the same time (an evaluator, the bless step) lose none."""
    path = join(model_dir, LINEAGE_FILE)
    new_sections = json.loads(json.dumps(dict(sections), default=str))
    written: dict[str, Any] = {}

    def with_sections(raw: bytes | None) -> bytes:
        record = _parse(raw, path) if raw else {}
        record.update(new_sections)
        record["model_dir"] = model_dir
        record["updated_at"] = time.time()
        written.clear()
        written.update(record)
        return json.dumps(record, sort_keys=True, indent=1).encode()

    filesystem(path).update_bytes(path, with_sections)
    return written
