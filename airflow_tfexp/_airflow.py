"""The adapters' toolbox: what operators, sensors and the factory share about Airflow itself.

Templating checks, the run's start time, the asset events that triggered a run, asset URIs,
the error event of a trigger, XCom-friendly results and environment scoping (deferring until
checkpoints appear is `triggers.checkpoint.defer_for_checkpoints`). Light to import (DAG files import the operators): the engine and the
trigger load inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_tfexp.experiment.storage.fs import is_gcs

if TYPE_CHECKING:
    from airflow.sdk import Context

# A deferred task resumed within seconds can be failed by Airflow (apache/airflow#72716: the
# scheduler applies the deferral's exit to the resumed try): a trigger's first look waits this
# long after every deferral, and a rescheduled try is requeued no sooner.
DEFER_SETTLE_SECS = 10.0


def _stopping_handler(task_id: str, previous: Any) -> Any:
    def on_sigterm(signum: int, frame: Any) -> None:
        if callable(previous):  # Airflow's own handler: the task's on_kill
            previous(signum, frame)
        from airflow.sdk.exceptions import AirflowTaskTerminated

        raise AirflowTaskTerminated(
            f"{task_id}: received SIGTERM and stopped (its last checkpoint is kept; a rerun "
            "resumes from it)."
        )

    return on_sigterm


@contextlib.contextmanager
def stops_on_sigterm(task_id: str) -> Iterator[None]:
    """SIGTERM stops the task: Airflow 3's task runner only calls `on_kill` and lets `execute`
    run on (`airflow dags test` then ignores SIGTERM for as long as training lasts). The
    exception is raised in the main thread at the next Python instruction: within one compiled
    chunk of steps, and every `finally` (the trainer lease) still runs. Under `dag.test()` the
    handler stays after the task: the test loop's waits (a reschedule, an inline trigger) come
    between this task's executions, and SIGTERM must stop them too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    handler = _stopping_handler(task_id, previous)
    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is handler and not triggers_run_inline():
            signal.signal(signal.SIGTERM, previous)


def triggers_run_inline() -> bool:
    """Whether this task runs under `dag.test()` / `airflow dags test`: there a deferred task's
    trigger runs in this process, and no other task of the run starts until it fires."""
    try:  # the in-process test runner is how dag.test() runs a task; no public flag says so
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    except ImportError:
        return False
    return isinstance(getattr(task_runner, "SUPERVISOR_COMMS", None), InProcessSupervisorComms)


def settled_reschedule(wanted: datetime, settle_secs: float | None, log: Any) -> Exception:
    """The AirflowRescheduleException for `wanted`, or for `settle_secs` from now if that is
    later: the scheduler fails a try requeued before it has processed the previous try's exit
    (the race of apache/airflow#72716; measured: a 0.5 s reschedule failed, and its retry came
    after `retry_delay`). Under `dag.test()` no scheduler is involved: `wanted` stands."""
    from airflow.sdk.exceptions import AirflowRescheduleException

    now = datetime.now(UTC)
    earliest = now + timedelta(seconds=settle_secs or 0)
    if settle_secs and wanted < earliest and not triggers_run_inline():
        log.info(
            "Looking again in %.1f s, not %.1f s: the scheduler fails a try requeued before it "
            "processed the previous one's exit (defer_settle_secs, apache/airflow#72716).",
            settle_secs,
            max(0.0, (wanted - now).total_seconds()),
        )
        wanted = earliest
    return AirflowRescheduleException(wanted)


def is_templated(value: Any) -> bool:
    """Whether a value is a Jinja template, checked when rendered instead of at parse time."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def run_start_timestamp(context: Context) -> float | None:
    """When this DAG run started (Unix time): older completion markers are an earlier run's."""
    start = getattr(context.get("dag_run"), "start_date", None)
    return start.timestamp() if start else None


def asset_events(context: Context) -> list[dict[str, Any]]:
    """The asset events that triggered this run, as plain JSON (oldest first)."""
    events = []
    for asset, refs in dict(context.get("triggering_asset_events") or {}).items():
        for ref in refs:
            events.append(
                {
                    "uri": getattr(getattr(ref, "asset", None), "uri", None)
                    or getattr(asset, "uri", str(asset)),
                    "extra": dict(getattr(ref, "extra", None) or {}),
                    "timestamp": str(getattr(ref, "timestamp", "")),
                    "source_dag_id": getattr(ref, "source_dag_id", None),
                    "source_run_id": getattr(ref, "source_run_id", None),
                }
            )
    return sorted(events, key=lambda e: e["timestamp"])


def asset_uri(path: str) -> str:
    """The asset URI of a model or publish dir: `gs://...` as it is, a local path as file://."""
    path = path.rstrip("/")
    return path if is_gcs(path) else f"file://{path}"


def raise_on_error_event(task_id: str, model_dir: str, event: Mapping[str, Any]) -> None:
    """A trigger's error event fails the task, naming the task and the model dir."""
    if event.get("status") == "error":
        from airflow.sdk.exceptions import AirflowException

        raise AirflowException(
            f"{task_id}: waiting for checkpoints in {model_dir} failed: {event.get('message')}"
        )


def jsonable(metrics: Any) -> dict[str, Any]:
    """Metrics as plain JSON values (NumPy and TensorFlow scalars become floats), for XCom."""
    from airflow_tfexp.experiment.evaluation.results import to_jsonable

    return to_jsonable(metrics)


@contextlib.contextmanager
def scoped_environment(changes: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block and restore them after: tasks may
    share a process (dag.test), and the next must not inherit this one's settings."""
    previous = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def max_map_length() -> int:
    """Airflow's `[core] max_map_length`: the most task instances one mapped task may expand to."""
    from airflow.sdk import conf

    return conf.getint("core", "max_map_length", fallback=1024)
