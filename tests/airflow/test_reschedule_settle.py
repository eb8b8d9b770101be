"""A rescheduled try is requeued no sooner than `defer_settle_secs` on a real scheduler, which
fails a try requeued before it processed the previous one's exit (apache/airflow#72716; the
e2e proof: `tests/e2e/test_parallel_evaluations.py` waits with a 0.5 s poll in one try)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException

from airflow_tfexp._airflow import settled_reschedule
from airflow_tfexp.sensors import CheckpointSensor
from tests.experiment.fakes import write_checkpoint

LOG = logging.getLogger("test")


class FirstTry:
    """The sensor's context needs only the first reschedule date of its task instance."""

    def get_first_reschedule_date(self, context):
        return None


def reschedule_in(sensor: CheckpointSensor) -> float:
    """Seconds from now to the date the sensor's try asks to be requeued at."""
    with pytest.raises(AirflowRescheduleException) as raised:
        sensor.execute({"ti": FirstTry()})
    return (raised.value.reschedule_date - datetime.now(UTC)).total_seconds()


def test_a_sensor_asking_for_half_a_second_is_requeued_after_the_settle(model_dir, caplog, capsys):
    write_checkpoint(model_dir, 0)
    common = {"model_dir": model_dir, "after_step": 0, "deferrable": False, "poke_interval": 0.5}
    sensor = CheckpointSensor(task_id="wait", mode="reschedule", **common)
    with caplog.at_level(logging.INFO):
        assert 9 < reschedule_in(sensor) <= 10
    # caplog, or stdout once Airflow has configured its (structlog) logging in this process
    assert "Looking again in 10.0 s, not 0.5 s" in caplog.text + capsys.readouterr().out
    unsettled = CheckpointSensor(task_id="now", mode="reschedule", defer_settle_secs=0, **common)
    assert reschedule_in(unsettled) <= 0.5
    slow = CheckpointSensor(task_id="slow", mode="reschedule", **{**common, "poke_interval": 30})
    assert 29 < reschedule_in(slow) <= 30


def test_a_later_wanted_date_stands_and_no_settle_changes_nothing():
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert settled_reschedule(later, 10, LOG).reschedule_date == later
    soon = datetime.now(UTC)
    assert settled_reschedule(soon, None, LOG).reschedule_date == soon
    assert settled_reschedule(soon, 0, LOG).reschedule_date == soon
