"""Early stopping that works when training and evaluation run in different processes.

The hook reads the evaluator's results file (`model_dir/eval_<name>/results.jsonl`) from the
training loop, so a separate continuous evaluator (another Airflow task, another machine) can stop
training, which tf.estimator's in-process early stopping could not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from airflow_tfexp.experiment._validation import (
    check_int,
    check_metric,
    check_mode,
    check_optional_seconds,
)
from airflow_tfexp.experiment.evaluation.results import parse_results, read_results, results_path
from airflow_tfexp.experiment.hooks import TrainingContext, TrainingHook
from airflow_tfexp.experiment.storage.fs import filesystem

log = logging.getLogger(__name__)


class EarlyStoppingHook(TrainingHook):
    """Stop training when `metric` has not improved for `patience` evaluations.

    :param metric: a key of the evaluation results, e.g. "loss" or "accuracy".
    :param mode: "min" (lower is better) or "max".
    :param patience: evaluations without improvement (by more than `min_delta`) before stopping.
    :param eval_name: which evaluator's results to follow ("continuous" is the continuous
        evaluator's default; None is the unnamed `eval` directory).
    :param model_dir: defaults to the model dir of the training it is attached to.
    :param check_interval_secs: read the results file at most this often.
    """

    def __init__(
        self,
        metric: str,
        mode: str = "min",
        patience: int = 3,
        min_delta: float = 0.0,
        eval_name: str | None = "continuous",
        model_dir: str | None = None,
        check_interval_secs: float = 1.0,
    ) -> None:
        self.metric = check_metric("metric", metric)
        self.mode = check_mode("mode", mode)
        self.patience = check_int("patience", patience, minimum=1)
        self.min_delta = abs(float(min_delta))
        self.eval_name = eval_name
        self.model_dir = model_dir
        self.check_interval_secs = check_optional_seconds(
            "check_interval_secs", check_interval_secs
        )
        self._last_check = float("-inf")
        self._last_size = -1
        self.stopped_at: int | None = None
        self.reason: str | None = None

    def begin(self, context: TrainingContext) -> None:
        if self.model_dir is None:
            self.model_dir = context.model_dir

    def _improved(self, value: float, best: float) -> bool:
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def should_stop(self, records: list[dict] | None = None) -> str | None:
        """Why training should stop according to the results (read now if not given), or None."""
        if records is None:
            records = read_results(self.model_dir, self.eval_name)
        values = [
            record["metrics"][self.metric]
            for record in sorted(records, key=lambda r: r["global_step"])
            if isinstance(record.get("metrics"), dict) and self.metric in record["metrics"]
        ]
        if not values:
            return None
        best, best_index = values[0], 0
        for index, value in enumerate(values[1:], start=1):
            if self._improved(value, best):
                best, best_index = value, index
        waited = len(values) - 1 - best_index
        if waited >= self.patience:
            return (
                f"{self.metric} has not improved for {waited} evaluations "
                f"(best {best:.6g}, mode={self.mode}, min_delta={self.min_delta}, patience={self.patience})"
            )
        return None

    def after_step(self, step: int, logs: Mapping[str, float]) -> bool:
        now = time.monotonic()
        if now - self._last_check < self.check_interval_secs:
            return False
        self._last_check = now
        path = results_path(self.model_dir, self.eval_name)
        raw = filesystem(path).read_bytes(path)  # one read: size check and records alike
        if raw is None or len(raw) == self._last_size:
            return False
        self._last_size = len(raw)
        reason = self.should_stop(parse_results(raw, path))
        if reason:
            self.stopped_at, self.reason = step, reason
            log.info("Early stopping at step %d: %s.", step, reason)
            return True
        return False
