"""Pruning that works when training and evaluation run in different processes.

Like `EarlyStoppingHook`, the hook reads the trial's results file from the training loop, so the
evaluations of a separate evaluator (another task, another machine) are reported too; each new
evaluation goes to the study as an intermediate value, and the study's pruner decides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.experiment._validation import check_optional_seconds
from airflow_tfexp.experiment.evaluation.results import parse_results, results_path
from airflow_tfexp.experiment.hooks import TrainingContext, TrainingHook
from airflow_tfexp.experiment.storage.fs import filesystem
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.experiment.tuning.study import StudySpec
from airflow_tfexp.experiment.tuning.trials import PRUNED_AT_ATTR, as_number, find_trial, live_trial

log = logging.getLogger(__name__)


class PruningHook(TrainingHook):
    """Report each evaluation of the trial's checkpoints to the study; stop when it prunes.

    :param study: the Optuna study (`open_study`); its pruner decides.
    :param spec: the study's spec: which metric of which evaluator's results is the objective.
    :param number: the trial's number in the study.
    :param model_dir: the trial's model dir (default: that of the training it is attached to).
    :param check_interval_secs: on gs://, look at the results file at most this often (a
        local one is looked at after every step: one `stat`).
    """

    def __init__(
        self,
        study: Any,
        spec: StudySpec,
        number: int,
        model_dir: str | None = None,
        check_interval_secs: float = 0.5,
    ) -> None:
        self.study = study
        self.spec = spec
        self.number = number
        self.model_dir = model_dir
        self.check_interval_secs = check_optional_seconds(
            "check_interval_secs", check_interval_secs
        )
        self.pruned_at: int | None = None
        self._reported: set[int] = set()
        self._last_check = float("-inf")
        self._last_version: Any = None
        self._warned = False
        self._trial: Any = None

    def begin(self, context: TrainingContext) -> None:
        if self.model_dir is None:
            self.model_dir = context.model_dir
        if parse_model_dir(self.model_dir).scheme != "gs":
            self.check_interval_secs = 0
        frozen = find_trial(self.study, self.number)
        self._reported = set(frozen.intermediate_values)  # an earlier try's reports stand
        self.pruned_at = frozen.user_attrs.get(PRUNED_AT_ATTR)
        self._trial = live_trial(self.study, self.number)

    def after_step(self, step: int, logs: Mapping[str, float]) -> bool:
        if self.pruned_at is not None:
            return True
        now = time.monotonic()
        if self.check_interval_secs and now - self._last_check < self.check_interval_secs:
            return False
        self._last_check = now
        return self.check()

    def check(self) -> bool:
        """Report what is new in the results file; True (and the trial pruned) if the pruner
        says to stop."""
        path = results_path(self.model_dir, self.spec.eval_name)
        fs = filesystem(path)
        version = fs.version(path)
        if version is None or version == self._last_version:
            return False
        self._last_version = version
        raw = fs.read_bytes(path) or b""
        records = [r for r in parse_results(raw, path) if isinstance(r.get("metrics"), dict)]
        new = sorted(
            (r["global_step"], as_number(r["metrics"][self.spec.metric]))
            for r in records
            if self.spec.metric in r["metrics"] and r["global_step"] not in self._reported
        )
        if records and not self._reported and not new and not self._warned:
            self._warned = True
            log.warning(
                "Trial %d: its evaluations have no metric %r (the objective), so nothing is "
                "reported for pruning; they have %s.",
                self.number,
                self.spec.metric,
                sorted(set(records[-1]["metrics"]) - {"global_step"}),
            )
        for step, value in new:
            self._trial.report(value, step)
            self._reported.add(step)
        if not new or not self._trial.should_prune():
            return False
        self._prune(new[-1][0], new[-1][1])
        return True

    def _prune(self, step: int, value: float) -> None:
        from optuna.trial import TrialState

        self.pruned_at = step
        self._trial.set_user_attr(PRUNED_AT_ATTR, step)
        self.study.tell(self.number, state=TrialState.PRUNED, skip_if_finished=True)
        log.info(
            "Trial %d pruned at step %d: %s=%.6g is worse than the pruner (%s) allows.",
            self.number,
            step,
            self.spec.metric,
            value,
            self.spec.pruner["type"],
        )
