"""CheckpointTrigger: serialize() mirrors the constructor; run() driven for real while files appear."""

from __future__ import annotations

import asyncio

import pytest

from airflow_tfexp.experiment.evaluation.coordination import write_completion_marker
from airflow_tfexp.experiment.evaluation.results import record_result
from airflow_tfexp.experiment.storage.fs import join
from airflow_tfexp.triggers.checkpoint import CheckpointTrigger
from tests.experiment.fakes import update_state, write_checkpoint, write_file


def test_serialize_mirrors_the_constructor():
    trigger = CheckpointTrigger(
        "/m",
        after_step=20,
        name="continuous",
        poll_interval=2.5,
        wait_for_training_complete=True,
        completed_after=12.5,
        gcp_conn_id="gcp",
        not_before=99.5,
        no_trainer_secs=30.0,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_tfexp.triggers.checkpoint.CheckpointTrigger"
    assert kwargs == {
        "model_dir": "/m",
        "after_step": 20,
        "name": "continuous",
        "poll_interval": 2.5,
        "wait_for_training_complete": True,
        "completed_after": 12.5,
        "gcp_conn_id": "gcp",
        "not_before": 99.5,
        "no_trainer_secs": 30.0,
    }
    assert CheckpointTrigger(**kwargs).serialize() == (classpath, kwargs)


async def first_event(trigger, timeout=10):
    return (await asyncio.wait_for(anext(trigger.run()), timeout)).payload


async def later(delay, action):
    await asyncio.sleep(delay)
    await asyncio.to_thread(action)


def test_fires_with_the_new_checkpoints_in_step_order_once_they_are_complete(model_dir):
    write_checkpoint(model_dir, 0)
    write_checkpoint(model_dir, 10)

    def partial_then_whole():
        # ckpt-20: data without index, then index without state -> neither fires the trigger.
        write_file(join(model_dir, "ckpt-20.data-00000-of-00001"))
        write_file(join(model_dir, "ckpt-30.index"))

    async def scenario():
        trigger = CheckpointTrigger(model_dir, after_step=10, poll_interval=0.05)
        task = asyncio.create_task(first_event(trigger))
        await later(0.2, partial_then_whole)
        await asyncio.sleep(0.3)
        assert not task.done()  # partial checkpoints never fire
        await later(0, lambda: write_file(join(model_dir, "ckpt-20.index")))
        await asyncio.sleep(0.3)
        assert not task.done()  # files whole, but the state does not name ckpt-20 yet
        await later(0, lambda: (write_checkpoint(model_dir, 30), update_state(model_dir, 30)))
        return await task

    event = asyncio.run(scenario())
    assert event["status"] == "success"
    assert [c["global_step"] for c in event["checkpoints"]] == [20, 30]
    assert event["checkpoints"][0] == {
        "checkpoint_path": join(model_dir, "ckpt-20"),
        "global_step": 20,
    }


def test_not_before_holds_back_the_first_look(model_dir):
    import time

    write_checkpoint(model_dir, 0)
    write_checkpoint(model_dir, 10)  # already there: without not_before it fires at once
    asked = time.time()
    trigger = CheckpointTrigger(model_dir, after_step=0, poll_interval=0.1, not_before=asked + 1.5)
    payload = asyncio.run(first_event(trigger))
    assert time.time() - asked >= 1.5
    assert [c["global_step"] for c in payload["checkpoints"]] == [10]


def test_uses_the_evaluators_watermark_without_after_step(model_dir):
    for step in (0, 10, 20):
        write_checkpoint(model_dir, step)
    record_result(model_dir, "continuous", {"global_step": 10}, "ckpt-10", 0.0)
    event = asyncio.run(
        first_event(CheckpointTrigger(model_dir, name="continuous", poll_interval=0.05))
    )
    assert [c["global_step"] for c in event["checkpoints"]] == [20] and event["watermark"] == 10


def test_training_complete_with_nothing_new_fires_an_empty_event(model_dir):
    write_checkpoint(model_dir, 30)
    write_completion_marker(model_dir, 30, "train_steps=30 reached")
    event = asyncio.run(
        first_event(CheckpointTrigger(model_dir, after_step=30, poll_interval=0.05))
    )
    assert event["status"] == "training_complete" and event["checkpoints"] == []


def test_an_old_runs_completion_marker_is_ignored(model_dir):
    import time

    write_completion_marker(model_dir, 30, "an earlier run")

    async def scenario():
        trigger = CheckpointTrigger(
            model_dir, after_step=30, poll_interval=0.05, completed_after=time.time() + 1
        )
        task = asyncio.create_task(first_event(trigger))
        await asyncio.sleep(0.3)
        assert not task.done()
        await later(0, lambda: write_checkpoint(model_dir, 40))
        return await task

    assert [c["global_step"] for c in asyncio.run(scenario())["checkpoints"]] == [40]


def test_wait_for_training_complete_returns_everything_at_the_end(model_dir):

    async def scenario():
        trigger = CheckpointTrigger(model_dir, poll_interval=0.05, wait_for_training_complete=True)
        task = asyncio.create_task(first_event(trigger))
        for step in (0, 10, 20):
            await later(0.1, lambda s=step: write_checkpoint(model_dir, s))
        await asyncio.sleep(0.2)
        assert not task.done()
        await later(0, lambda: write_completion_marker(model_dir, 20, "done"))
        return await task

    event = asyncio.run(scenario())
    assert [c["global_step"] for c in event["checkpoints"]] == [0, 10, 20]


def test_a_storage_error_becomes_an_error_event():
    class Broken(CheckpointTrigger):
        def _scan(self, previous):
            raise PermissionError("no read access to /m")

    event = asyncio.run(first_event(Broken("/m", poll_interval=0.05)))
    assert event == {"status": "error", "message": "PermissionError: no read access to /m"}


def test_one_look_costs_a_constant_number_of_reads_however_many_checkpoints(model_dir):
    from airflow_tfexp.experiment.evaluation.model_dir_scan import scan_model_dir

    write_checkpoint(model_dir, 0)
    few = scan_model_dir(model_dir, "continuous").requests
    for step in range(10, 510, 10):
        write_checkpoint(model_dir, step)
    write_completion_marker(model_dir, 500, "done")
    scan = scan_model_dir(model_dir, "continuous")
    assert len(scan.checkpoints) == 51
    assert scan.requests == few + 1 == 4  # listing, state, marker, results


@pytest.mark.parametrize("after_step", [None, 5])
def test_the_trigger_never_blocks_the_event_loop(tmp_path, after_step):
    """While the trigger looks at a (slow) model dir, other coroutines keep running."""
    import time

    class Slow(CheckpointTrigger):
        def _scan(self, previous):
            time.sleep(0.3)  # a slow storage call, run in a thread
            return super()._scan(previous)

    async def scenario():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        write_checkpoint(str(tmp_path), 10)
        await first_event(Slow(str(tmp_path), after_step=after_step, poll_interval=0.05))
        ticking.cancel()
        return ticks

    assert asyncio.run(scenario()) >= 15


def test_one_look_at_a_gcs_model_dir_with_50_checkpoints_costs_4_http_requests(gcs_emulator):
    """Counted on the wire: every HTTP request the storage client sends to the server."""
    from airflow_tfexp.experiment.evaluation.model_dir_scan import scan_model_dir
    from airflow_tfexp.experiment.storage.gcs import gcs_filesystem

    model_dir = "gs://tfexp-test/fifty-checkpoints"
    for step in range(0, 500, 10):
        write_checkpoint(model_dir, step)
    write_completion_marker(model_dir, 490, "done")
    record_result(model_dir, "continuous", {"global_step": 480}, "ckpt-480", 0.0)
    session = gcs_filesystem().client._http
    sent = []
    original = session.request

    def counting(method, url, *args, **kwargs):
        sent.append((method, url.split("?")[0]))
        return original(method, url, *args, **kwargs)

    session.request = counting
    try:
        scan = scan_model_dir(model_dir, "continuous")
    finally:
        session.request = original
    assert len(scan.checkpoints) == 50 and scan.evaluated_max == 480
    assert len(sent) == scan.requests == 4, sent


def test_the_sensors_poke_ignores_partial_checkpoints_too(model_dir):
    from airflow_tfexp.sensors import CheckpointSensor

    sensor = CheckpointSensor(task_id="wait", model_dir=model_dir, after_step=0, deferrable=False)
    write_checkpoint(model_dir, 0)
    write_file(join(model_dir, "ckpt-10.index"))  # index without data
    write_file(join(model_dir, "ckpt-20.data-00000-of-00001"))  # data without index
    write_file(join(model_dir, "ckpt-20.index"))  # now whole, but the state does not name it
    assert sensor.poke({}) is False
    update_state(model_dir, 20)
    done = sensor.poke({})
    assert done.is_done and [c["global_step"] for c in done.xcom_value] == [20]
