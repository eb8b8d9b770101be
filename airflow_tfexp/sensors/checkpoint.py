"""CheckpointSensor: wait for new complete checkpoints; return them for mapped evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_tfexp._airflow import (
    DEFER_SETTLE_SECS,
    is_templated,
    raise_on_error_event,
    run_start_timestamp,
    settled_reschedule,
    stops_on_sigterm,
)
from airflow_tfexp._config import checkpoint_poll_interval, default_deferrable
from airflow_tfexp.experiment._validation import check_optional_seconds
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.names import DEFAULT_GCP_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context


class CheckpointSensor(BaseSensorOperator):
    """Wait until a checkpoint newer than `after_step` (or than evaluator `name`'s last evaluated
    step) is complete, and return the new checkpoints as ``[{"checkpoint_path", "global_step"}]``
    in step order, e.g. for ``EvaluateOperator.partial(...).expand(checkpoint_path=...)``.

    When training completes with nothing newer, it returns ``[]`` (a mapped evaluation over it is
    skipped). Deferrable by default: the wait happens in the triggerer, holding no worker slot.

    :param model_dir: the model dir (templated).
    :param after_step: report checkpoints after this global step (templated).
    :param name: the evaluator whose recorded watermark replaces `after_step` when that is None.
    :param wait_for_training_complete: return only once training completed, with every
        checkpoint newer than the watermark (keep them with `keep_checkpoint_max=None`).
    :param deferrable: wait in the triggerer (default from `[tfexp] default_deferrable`).
    :param poke_interval: seconds between two looks (default `[tfexp] checkpoint_poll_interval`).
    :param gcp_conn_id: the connection whose credentials reach a gs:// model dir.
    :param defer_settle_secs: once deferred, the trigger's first look waits this long, and a
        rescheduled try is requeued no sooner (not under dag.test()), so the task is never
        resumed before the scheduler processed its previous exit (apache/airflow#72716 fails a
        task resumed that fast).
    """

    template_fields: Sequence[str] = ("model_dir", "after_step", "name")
    ui_color = "#ffd27f"

    def __init__(
        self,
        *,
        model_dir: str,
        after_step: int | str | None = None,
        name: str | None = None,
        wait_for_training_complete: bool = False,
        deferrable: bool | None = None,
        gcp_conn_id: str = DEFAULT_GCP_CONN_ID,
        defer_settle_secs: float = DEFER_SETTLE_SECS,
        **kwargs: Any,
    ) -> None:
        # Airflow's sensor default is 60 s: a checkpoint waits for `[tfexp]
        # checkpoint_poll_interval` (5 s) unless the task sets `poke_interval`
        kwargs.setdefault("poke_interval", checkpoint_poll_interval())
        super().__init__(**kwargs)
        self.gcp_conn_id = gcp_conn_id
        self.defer_settle_secs = check_optional_seconds("defer_settle_secs", defer_settle_secs)
        if not is_templated(model_dir):
            parse_model_dir(model_dir)
        if after_step is not None and not is_templated(after_step):
            _as_step(after_step)
        self.model_dir = model_dir
        self.after_step = after_step
        self.name = name
        self.wait_for_training_complete = wait_for_training_complete
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def _check(self, context: Context) -> dict[str, Any] | None:
        from airflow_tfexp.experiment.evaluation.model_dir_scan import (
            checkpoints_to_report,
            scan_model_dir,
        )
        from airflow_tfexp.hooks.gcp_credentials import gcp_credentials

        poking = not self.deferrable and self.mode == "poke"  # this instance looks again
        with gcp_credentials(self.gcp_conn_id, self.model_dir, self.log):
            scan = scan_model_dir(
                self.model_dir, self.name, getattr(self, "_last_scan", None), watching=poking
            )
        if poking:
            self._last_scan = scan
        return checkpoints_to_report(
            scan,
            _as_step(self.after_step),
            wait_for_training_complete=self.wait_for_training_complete,
            completed_after=run_start_timestamp(context),
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        self._check_rendered()
        event = self._check(context)
        if event is None:
            self.log.info("No new complete checkpoint in %s yet.", self.model_dir)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(event))

    def _check_rendered(self) -> None:
        """The rendered model dir: valid, inside `[tfexp] model_dir_roots` (a run's conf may
        choose it; the sensor lists its checkpoints into XCom), and a plain evaluator name."""
        from airflow_tfexp.experiment.evaluation.results import check_evaluator_name
        from airflow_tfexp.operators._ownership import check_inside_roots

        parse_model_dir(self.model_dir)
        check_inside_roots(self.model_dir, "model_dir")
        check_evaluator_name(self.name)

    def execute(self, context: Context) -> Any:
        self._check_rendered()
        with stops_on_sigterm(self.task_id):  # poking sleeps in here
            return self._wait(context)

    def _wait(self, context: Context) -> Any:
        if not self.deferrable:
            from airflow.sdk.exceptions import AirflowRescheduleException

            try:
                return super().execute(context)
            except AirflowRescheduleException as reschedule:
                raise settled_reschedule(
                    reschedule.reschedule_date, self.defer_settle_secs, self.log
                ) from None
        event = self._check(context)
        if event is not None:
            return self._finish(event)
        from airflow_tfexp.triggers.checkpoint import defer_for_checkpoints

        defer_for_checkpoints(
            self,
            model_dir=self.model_dir,
            after_step=_as_step(self.after_step),
            name=self.name,
            poll_interval=float(self.poke_interval),
            wait_for_training_complete=self.wait_for_training_complete,
            completed_after=run_start_timestamp(context),
            gcp_conn_id=self.gcp_conn_id,
            settle_secs=self.defer_settle_secs or 0,
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        raise_on_error_event(self.task_id, self.model_dir, event)
        return self._finish(event)

    def _finish(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        checkpoints = event["checkpoints"]
        if checkpoints:
            steps = [c["global_step"] for c in checkpoints]
            self.log.info(
                "%d new checkpoint(s) after step %s: steps %s.",
                len(steps),
                event["watermark"],
                steps,
            )
        else:
            self.log.info(
                "Training completed (%s) with no checkpoint newer than step %s: nothing to evaluate.",
                (event.get("completion") or {}).get("reason"),
                event["watermark"],
            )
        return checkpoints


def _as_step(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        step = int(value)
    except (TypeError, ValueError):
        step = None
    if step is None or isinstance(value, bool) or step < -1:
        raise ValueError(
            f"Invalid value for `after_step`. Received: {value!r}. Expected None or an int >= -1."
        )
    return step
