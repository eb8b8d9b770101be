"""`<sweep model dir>/sweep.json`: the study as the Experiments page shows it.

The study lives in its storage (a journal, a database) that the Airflow API server should not
open; the sweep's tasks write this snapshot of it, whole (a reader sees the old one or the new
one), after asking for a wave's trials and after telling the study how they ended.
"""

from __future__ import annotations

import json
import time
from typing import Any

from airflow_tfexp.experiment.storage.fs import filesystem, join
from airflow_tfexp.experiment.tuning.study import StudySpec
from airflow_tfexp.experiment.tuning.trials import best_trial, study_rows

SWEEP_FILE = "sweep.json"
_ROW_FIELDS = ("number", "params", "state", "value", "pruned_at_step", "wave", "failure")


def write_sweep_snapshot(study: Any, spec: StudySpec, model_dir: str, trials: int) -> dict:
    """Replace the snapshot with the study as it is now; returns it."""
    best = best_trial(study, spec, model_dir)
    snapshot = {
        "study": spec.name,
        "metric": spec.metric,
        "mode": spec.mode,
        "sampler": spec.sampler["type"],
        "pruner": spec.pruner["type"],
        "trials_total": trials,
        "updated_at": time.time(),
        "best": best.number if best else None,
        "trials": [{k: row[k] for k in _ROW_FIELDS} for row in study_rows(study, spec, model_dir)],
    }
    path = join(model_dir, SWEEP_FILE)
    filesystem(path).write_bytes(path, json.dumps(snapshot, sort_keys=True).encode())
    return snapshot
