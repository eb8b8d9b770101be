"""CheckpointTrigger: wait in the triggerer until new complete checkpoints exist in a model dir."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_tfexp._airflow import DEFER_SETTLE_SECS, triggers_run_inline
from airflow_tfexp.experiment.evaluation.model_dir_scan import (
    CheckpointEventStatus,
    ModelDirScan,
    checkpoints_to_report,
    scan_model_dir,
    watermark,
)
from airflow_tfexp.experiment.storage.fs import is_gcs
from airflow_tfexp.experiment.storage.gcs import using_credentials
from airflow_tfexp.experiment.training_lease import active_trainer
from airflow_tfexp.hooks.gcp_credentials import aload_gcp_credentials
from airflow_tfexp.triggers._shared_looks import LookKey, SharedLooks, look_key, shared_looks

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

INLINE_NO_TRAINER_SECS = 120.0  # how long an inline (dag.test) trigger waits with no trainer
_NO_TRAINER = (
    "no trainer became active and no checkpoint came. `dag.test()` / `airflow dags test` run "
    "one task at a time and a deferred task's trigger inline, so the training task (not run "
    "yet?) cannot write any while this waits. Make this task downstream of the training task, "
    "or wait by rescheduling: deferrable=False, mode='reschedule' (factory: `wait: reschedule`)."
)


class CheckpointTrigger(BaseTrigger):
    """Fire when a complete checkpoint newer than `after_step` (or than evaluator `name`'s last
    evaluated step) exists, or when training has completed.

    The event is ``{"status", "checkpoints": [{"checkpoint_path", "global_step"}, ...] (step order),
    "watermark", "completion"}``; statuses are those of `CheckpointEventStatus`. Every look at the
    model dir runs in a thread (the event loop never blocks) and costs a constant number of
    storage reads, however many checkpoints exist; triggers watching the same model dir in one
    triggerer share each look (`_shared_looks`).

    :param model_dir: the model directory to watch.
    :param after_step: report checkpoints with a larger global step; None uses the watermark of
        evaluator `name` (or reports every checkpoint when `name` is None too).
    :param name: the evaluator whose last evaluated step is the watermark.
    :param poll_interval: seconds between two looks.
    :param wait_for_training_complete: fire only once training has written its completion marker
        (then with every checkpoint newer than the watermark).
    :param completed_after: ignore a completion marker written before this Unix time (an earlier
        run's marker in a reused model dir).
    :param gcp_conn_id: the connection whose credentials reach a gs:// model dir (None, or no
        such connection: the triggerer's Application Default Credentials).
    :param no_trainer_secs: fail when no trainer has held the model dir's lease for this long
        (set under `dag.test()`, where no other task runs while the trigger waits).
    :param not_before: a Unix time before which the trigger does not look (a task that deferred
        a moment ago must not be resumed before the scheduler has processed its deferral:
        apache/airflow#72716 fails a task resumed that fast).
    """

    def __init__(
        self,
        model_dir: str,
        after_step: int | None = None,
        name: str | None = None,
        poll_interval: float = 5.0,
        wait_for_training_complete: bool = False,
        completed_after: float | None = None,
        gcp_conn_id: str | None = None,
        not_before: float | None = None,
        no_trainer_secs: float | None = None,
    ) -> None:
        super().__init__()
        self.not_before = not_before
        self.no_trainer_secs = no_trainer_secs
        self.gcp_conn_id = gcp_conn_id
        self.model_dir = model_dir
        self.after_step = after_step
        self.name = name
        self.poll_interval = poll_interval
        self.wait_for_training_complete = wait_for_training_complete
        self.completed_after = completed_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "model_dir": self.model_dir,
                "after_step": self.after_step,
                "name": self.name,
                "poll_interval": self.poll_interval,
                "wait_for_training_complete": self.wait_for_training_complete,
                "completed_after": self.completed_after,
                "gcp_conn_id": self.gcp_conn_id,
                "not_before": self.not_before,
                "no_trainer_secs": self.no_trainer_secs,
            },
        )

    def _scan(self, previous: ModelDirScan | None) -> ModelDirScan:
        """One look at the model dir (blocking; run in a thread). A seam for tests. Unchanged
        since the `previous` look (the checkpoint state's version), it costs one metadata
        read."""
        return scan_model_dir(self.model_dir, self.name, previous, watching=True)

    def _get_time(self) -> float:
        return time.monotonic()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            credentials = None
            if is_gcs(self.model_dir):
                credentials = await aload_gcp_credentials(self.gcp_conn_id, self.log)
            with using_credentials(credentials):
                event = await self._wait_for_event()
        except Exception as err:  # noqa: BLE001 - reported to the task, which fails naming it
            event = {
                "status": CheckpointEventStatus.ERROR.value,
                "message": f"{type(err).__name__}: {err}",
            }
        yield TriggerEvent(event)

    async def _wait_for_event(self) -> dict[str, Any]:
        settle = (self.not_before or 0) - time.time()
        if settle > 0:
            self.log.info(
                "Not looking for %.1f s: the deferral must settle in the scheduler first.", settle
            )
            await asyncio.sleep(settle)
        shared, key = shared_looks(), look_key(self.model_dir, self.name, self.gcp_conn_id)
        with shared.watching(key):
            return await self._poll(shared, key)

    async def _poll(self, shared: SharedLooks, key: LookKey) -> dict[str, Any]:
        started, looks = self._get_time(), 0
        trainer_seen = started
        wanted_at = waiting_since = shared.clock()
        while True:
            # in a thread (the loop never blocks), shared with the triggers watching `key`
            scan = await shared.look(key, wanted_at, self._scan, based_since=waiting_since)

            looks += 1
            event = checkpoints_to_report(
                scan,
                self.after_step,
                wait_for_training_complete=self.wait_for_training_complete,
                completed_after=self.completed_after,
            )
            if event is not None:
                self.log.info(
                    "%s: %d new checkpoint(s) after step %s (%s) after %d look(s) in %.1f s.",
                    self.model_dir,
                    len(event["checkpoints"]),
                    event["watermark"],
                    event["status"],
                    looks,
                    self._get_time() - started,
                )
                return event
            if looks == 1:
                self.log.info(
                    "Waiting for a checkpoint newer than step %s in %s%s; looking every %s s.",
                    watermark(self.after_step, scan),
                    self.model_dir,
                    " and for training to complete" if self.wait_for_training_complete else "",
                    self.poll_interval,
                )
            if self.no_trainer_secs is not None:
                if await asyncio.to_thread(active_trainer, self.model_dir):
                    trainer_seen = self._get_time()
                elif self._get_time() - trainer_seen > self.no_trainer_secs:
                    return {"status": CheckpointEventStatus.ERROR.value, "message": _NO_TRAINER}
            wanted_at = shared.next_instant(key, self.poll_interval)
            await shared.sleep_until(wanted_at)


def defer_for_checkpoints(
    operator: BaseOperator,
    *,
    model_dir: str,
    after_step: int | None,
    poll_interval: float,
    completed_after: float | None,
    gcp_conn_id: str | None,
    timeout: timedelta,
    name: str | None = None,
    wait_for_training_complete: bool = False,
    settle_secs: float = DEFER_SETTLE_SECS,
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Defer `operator` to a CheckpointTrigger that resumes it at `execute_complete`. Every
    deferral goes through here, so the trigger's first look always waits `settle_secs`: a task
    resumed within seconds of deferring is failed by Airflow (apache/airflow#72716).

    Under `dag.test()` / `airflow dags test` the trigger runs inline and no other task runs
    meanwhile: with no trainer active in `model_dir` it would wait forever, so it gives up
    after `INLINE_NO_TRAINER_SECS` without one."""
    no_trainer_secs = None
    if triggers_run_inline():
        no_trainer_secs = INLINE_NO_TRAINER_SECS
        operator.log.info(
            "dag.test(): the trigger runs inline, one task at a time; it fails if no trainer is "
            "active in %s for %.0f s.",
            model_dir,
            no_trainer_secs,
        )
    operator.defer(
        trigger=CheckpointTrigger(
            model_dir=model_dir,
            after_step=after_step,
            name=name,
            poll_interval=poll_interval,
            wait_for_training_complete=wait_for_training_complete,
            completed_after=completed_after,
            gcp_conn_id=gcp_conn_id,
            not_before=time.time() + settle_secs if settle_secs else None,
            no_trainer_secs=no_trainer_secs,
        ),
        method_name="execute_complete",
        kwargs=kwargs,
        timeout=timeout,
    )
