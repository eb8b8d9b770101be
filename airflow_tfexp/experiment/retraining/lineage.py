"""A run's lineage: `model_dir/run.json`, what made this model and what became of it.

Sections (each written by the step that knows it): `config`, `params`, `data_events` (the
asset events that triggered the run), `warm_start` (source or null), `evaluations`,
`blessing`, `published`. Every update rewrites the file whole (atomic), replacing only its
own sections, so a retried step rewrites the same values: updates are idempotent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.experiment.storage.fs import filesystem, join

LINEAGE_FILE = "run.json"


def read_lineage(model_dir: str) -> dict[str, Any]:
    text = filesystem(model_dir).read_bytes(join(model_dir, LINEAGE_FILE))
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"{join(model_dir, LINEAGE_FILE)} is not valid JSON.") from None


def update_lineage(model_dir: str, sections: Mapping[str, Any]) -> dict[str, Any]:
    """Set these sections (others are kept) and return the whole record."""
    record = read_lineage(model_dir)
    record.update(json.loads(json.dumps(dict(sections), default=str)))
    record["model_dir"] = model_dir
    record["updated_at"] = time.time()
    filesystem(model_dir).write_bytes(
        join(model_dir, LINEAGE_FILE), json.dumps(record, sort_keys=True, indent=1).encode()
    )
    return record
