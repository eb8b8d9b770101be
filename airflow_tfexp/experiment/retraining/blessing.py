"""The blessing gate: is a candidate model better than the published one?

Both models are evaluated in the same task on the same evaluation data (the baseline is
re-evaluated, never trusted from an old number); `decide` compares one metric. The record
(blessed or not, both numbers, why) is written to `model_dir/blessing.json` so a retry, the
publish step and the lineage all read the same decision.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.experiment._validation import check_metric, check_mode
from airflow_tfexp.experiment.storage.fs import filesystem, join

BLESSING_FILE = "blessing.json"


class BlessingSpec:
    """How to judge a candidate.

    :param metric: the evaluation metric compared (e.g. "loss", "accuracy").
    :param mode: "min" (smaller is better) or "max".
    :param min_delta: how much better than the baseline the candidate must be (>= 0).
    :param threshold: the candidate must also be at most (min) / at least (max) this value.
    :param bless_without_baseline: whether a first candidate (nothing published yet) is
        blessed when it passes the threshold (or when there is no threshold).
    """

    def __init__(
        self,
        metric: str,
        mode: str = "min",
        min_delta: float = 0.0,
        threshold: float | None = None,
        bless_without_baseline: bool = True,
    ) -> None:
        check_metric("metric", metric)
        check_mode("mode", mode)
        if not _is_number(min_delta) or min_delta < 0:
            raise ValueError(
                f"Invalid value for `min_delta`. Received: {min_delta!r}. Expected a number >= 0."
            )
        if threshold is not None and not _is_number(threshold):
            raise ValueError(
                f"Invalid value for `threshold`. Received: {threshold!r}. Expected a number or None."
            )
        self.metric = metric
        self.mode = mode
        self.min_delta = float(min_delta)
        self.threshold = None if threshold is None else float(threshold)
        self.bless_without_baseline = bool(bless_without_baseline)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "mode": self.mode,
            "min_delta": self.min_delta,
            "threshold": self.threshold,
            "bless_without_baseline": self.bless_without_baseline,
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def metric_value(metrics: Mapping[str, Any], metric: str, whose: str) -> float:
    """The metric's value; a clear error names the metric and the metrics there are."""
    if metric not in metrics:
        available = sorted(k for k, v in metrics.items() if _is_number(v) and k != "global_step")
        raise ValueError(
            f"The blessing metric {metric!r} is not in the {whose}'s evaluation. "
            f"Available metrics: {available}."
        )
    value = metrics[metric]
    if not _is_number(value) or math.isnan(value):
        raise ValueError(f"The {whose}'s {metric!r} is not a number: {value!r}.")
    return float(value)


def decide(
    spec: BlessingSpec, candidate: Mapping[str, Any], baseline: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The decision as a record: blessed, both values and the reason, in words."""
    value = metric_value(candidate, spec.metric, "candidate")
    sign = 1.0 if spec.mode == "min" else -1.0  # sign * value: smaller is better
    better_word = "lower" if spec.mode == "min" else "higher"
    record: dict[str, Any] = {
        "metric": spec.metric,
        "mode": spec.mode,
        "candidate": value,
        "baseline": None if baseline is None else metric_value(baseline, spec.metric, "baseline"),
        "spec": spec.as_dict(),
    }
    if spec.threshold is not None and sign * value > sign * spec.threshold:
        limit = "at most" if spec.mode == "min" else "at least"
        return {
            **record,
            "blessed": False,
            "reason": f"candidate {spec.metric}={value:.6g} fails the threshold "
            f"({limit} {spec.threshold:.6g})",
        }
    if baseline is None:
        blessed = spec.bless_without_baseline
        why = "no published model to compare with" + (
            "; blessed on the threshold alone"
            if spec.threshold is not None
            else "; blessed (no threshold set)"
        )
        if not blessed:
            why = "no published model to compare with and bless_without_baseline is false"
        return {**record, "blessed": blessed, "reason": why}
    base = record["baseline"]
    improvement = sign * (base - value)  # > 0: the candidate is better
    if improvement > spec.min_delta:
        reason = (
            f"candidate {spec.metric}={value:.6g} is {better_word} than the baseline's "
            f"{base:.6g} by {improvement:.6g} (min_delta {spec.min_delta:.6g})"
        )
        return {**record, "blessed": True, "reason": reason}
    reason = (
        f"candidate {spec.metric}={value:.6g} is not {better_word} than the baseline's "
        f"{base:.6g} by more than min_delta {spec.min_delta:.6g}"
    )
    return {**record, "blessed": False, "reason": reason}


def write_blessing(model_dir: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Write the decision (stamped with when it was made) and return it as written."""
    record = json.loads(json.dumps({**record, "decided_at": time.time()}))
    filesystem(model_dir).write_bytes(
        join(model_dir, BLESSING_FILE), json.dumps(record, sort_keys=True).encode()
    )
    return record


MAX_BLESSING_BYTES = 2**20


def read_blessing(model_dir: str) -> dict[str, Any] | None:
    """The decision recorded in `model_dir` (None: none yet); a file that is not a decision
    (not a JSON object, over 1 MB) is an error naming it."""
    path = join(model_dir, BLESSING_FILE)
    text = filesystem(model_dir).read_bytes_at_most(path, MAX_BLESSING_BYTES)
    if not text:
        return None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a blessing record (a JSON object).")
    return record


def is_blessed(record: Mapping[str, Any] | None) -> bool:
    """Only a record whose `blessed` is true itself (not "yes", not 1) blesses a candidate."""
    return isinstance(record, Mapping) and record.get("blessed") is True
