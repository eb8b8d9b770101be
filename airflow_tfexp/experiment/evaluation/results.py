"""Evaluation results: one JSON line per evaluation in `model_dir/eval_<name>/results.jsonl`.

The file is the evaluator's memory: it survives restarts (only-once evaluation survives a task
retry), and exporters, early stopping and the UI read it without talking to the evaluator.
Appends never lose a record to a concurrent one (mapped evaluations of one name write the same
file): locally one `O_APPEND` write each, on GCS a generation-matched rewrite (`append_line`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from airflow_tfexp.experiment.storage.files import append_jsonl, iter_jsonl
from airflow_tfexp.experiment.storage.fs import filesystem, join

log = logging.getLogger(__name__)
RESULTS_FILE = "results.jsonl"


def check_evaluator_name(name: Any, argument: str = "name") -> None:
    """An evaluator name is one plain path segment: it names `model_dir/eval_<name>/`, so a
    name with "/" or ".." (from a run's conf, say) must not reach another directory."""
    if name is None or name == "":
        return
    if (
        not isinstance(name, str)
        or len(name) > 100
        or not all(c.isalnum() or c in "_-." for c in name)
        or name.startswith(".")
    ):
        raise ValueError(
            f"Invalid value for `{argument}`. Received: {name!r}. Expected an evaluator name of "
            "letters, digits, '_', '-' and '.' (not first), at most 100 characters."
        )


def eval_dir(model_dir: str, name: str | None) -> str:
    """`model_dir/eval` for the unnamed evaluation, `model_dir/eval_<name>` otherwise."""
    check_evaluator_name(name)
    return join(model_dir, "eval" if not name else f"eval_{name}")


def results_path(model_dir: str, name: str | None) -> str:
    return join(eval_dir(model_dir, name), RESULTS_FILE)


def to_jsonable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as plain Python numbers (tensors and NumPy scalars become floats or ints)."""
    plain: dict[str, Any] = {}
    for key, value in metrics.items():
        if hasattr(value, "numpy"):
            value = value.numpy()
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # JSON has no NaN; keep it visible rather than fail
        plain[str(key)] = value
    return plain


def record_result(
    model_dir: str,
    name: str | None,
    metrics: Mapping[str, Any],
    checkpoint_path: str | None,
    duration_secs: float,
) -> dict[str, Any]:
    """Append one evaluation to the results file and return the record."""
    plain = to_jsonable(metrics)
    record = {
        "global_step": int(plain.get("global_step", -1)),
        "checkpoint_path": checkpoint_path,
        "metrics": plain,
        "wall_time": time.time(),
        "duration_secs": round(duration_secs, 3),
    }
    append_jsonl(results_path(model_dir, name), record)
    return record


def parse_results(
    raw: bytes, path: str, problem: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """The evaluation records in a results file's content, in the order written. A torn or
    garbage line, or a record without a whole-number global_step, is skipped and reported to
    `problem` (default: a warning naming the file): every reader (continuous evaluation, the
    sensor and triggers, GC, early stopping, exporters) relies on each record having one."""
    report = problem or log.warning
    records = []
    for number, record in iter_jsonl(raw, path, report):
        step = record.get("global_step")
        if isinstance(step, int) and not isinstance(step, bool):
            records.append(record)
        else:
            report(f"{path}: line {number} has no whole global_step ({step!r}), skipped")
    return records


def read_results_file(path: str) -> list[dict[str, Any]]:
    """The records of one results file ([] when there is none)."""
    raw = filesystem(path).read_bytes(path)
    return [] if raw is None else parse_results(raw, path)


def read_results(model_dir: str, name: str | None) -> list[dict[str, Any]]:
    """The evaluator's records (see `parse_results`)."""
    return read_results_file(results_path(model_dir, name))


def evaluated_steps(model_dir: str, name: str | None) -> set[int]:
    return {record["global_step"] for record in read_results(model_dir, name)}


def _evaluator_dirs(model_dir: str) -> list[str]:
    names = filesystem(model_dir).listdir(model_dir)
    return sorted(n for n in names if n == "eval" or n.startswith("eval_"))


def find_result(model_dir: str, global_step: int) -> dict[str, Any] | None:
    """The metrics of an evaluation of `global_step` recorded by any evaluator, or None."""
    for directory in _evaluator_dirs(model_dir):
        for record in read_results_file(join(model_dir, directory, RESULTS_FILE)):
            if record["global_step"] == global_step and isinstance(record.get("metrics"), dict):
                return record["metrics"]
    return None


def read_all_results(model_dir: str) -> dict[str, list[dict[str, Any]]]:
    """Every evaluator's recorded results: `{evaluator dir name: [records in order]}`."""
    return {
        n: read_results_file(join(model_dir, n, RESULTS_FILE)) for n in _evaluator_dirs(model_dir)
    }
