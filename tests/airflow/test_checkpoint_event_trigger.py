"""CheckpointEventTrigger driven for real on a model dir (local and gs://), with an in-memory
asset state store standing in for the triggerer's (the real one runs in tests/e2e)."""

from __future__ import annotations

import asyncio
import contextlib

from airflow_tfexp.experiment.evaluation.coordination import protection_reason
from airflow_tfexp.experiment.evaluation.results import record_result
from airflow_tfexp.operators.checkpoint_events import checkpoints_from_events
from airflow_tfexp.triggers.checkpoint_event import WATERMARK_KEY, CheckpointEventTrigger
from tests.experiment.fakes import write_checkpoint


class MemoryStateStore:
    """The accessor API the triggerer injects (`aget` / `aset`), kept in a dict."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    async def aget(self, key, default=None):
        return self.values.get(key, default)

    async def aset(self, key, value):
        self.values[key] = value


async def collect(trigger, expected, timeout=15):
    """Drive the trigger like the triggerer does (iterating on) until it has emitted the
    expected number of events and a few more polls passed (with a state store: and it stored
    the last one as its watermark, which it does one poll after emitting; on a loaded machine
    that can take longer than a few poll intervals), then stop it (a triggerer stop)."""
    events = trigger.run()
    steps: list[int] = []
    store = getattr(trigger, "asset_state_store", None)

    async def consume() -> None:
        async for event in events:
            steps.append(event.payload["global_step"])

    def settled() -> bool:
        return store is None or store.values.get(WATERMARK_KEY) == steps[-1]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    consumer = asyncio.create_task(consume())
    try:
        while loop.time() < deadline and len(steps) < len(expected):
            await asyncio.sleep(trigger.poll_interval / 2)
        await asyncio.sleep(trigger.poll_interval * 4)  # anything emitted twice shows by now
        while steps and not settled() and loop.time() < deadline:
            await asyncio.sleep(trigger.poll_interval / 2)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await events.aclose()
    return steps


def test_serialize_mirrors_the_constructor():
    trigger = CheckpointEventTrigger("gs://b/m/", name="event", poll_interval=2, gcp_conn_id="g")
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_tfexp.triggers.checkpoint_event.CheckpointEventTrigger"
    assert kwargs == {
        "model_dir": "gs://b/m",
        "name": "event",
        "poll_interval": 2,
        "gcp_conn_id": "g",
    }
    assert CheckpointEventTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_each_checkpoint_once_in_order_and_a_restart_resumes_after_the_watermark(model_dir):
    store = MemoryStateStore()

    def trigger():
        t = CheckpointEventTrigger(model_dir, name="event", poll_interval=0.05)
        t.asset_state_store = store
        return t

    for step in (0, 10):
        write_checkpoint(model_dir, step)
    assert asyncio.run(collect(trigger(), [0, 10])) == [0, 10]
    assert store.values[WATERMARK_KEY] == 10
    # The watcher registered evaluator "event": training's garbage collection keeps what it
    # has not evaluated yet.
    assert "has not evaluated it yet" in protection_reason(model_dir, 10)

    # A restarted trigger (same store) emits only what is new.
    for step in (20, 30):
        write_checkpoint(model_dir, step)
    assert asyncio.run(collect(trigger(), [20, 30])) == [20, 30]
    assert store.values[WATERMARK_KEY] == 30


def test_without_a_stored_watermark_it_starts_after_what_the_evaluator_already_did(tmp_path):
    model_dir = str(tmp_path)
    for step in (0, 10, 20):
        write_checkpoint(model_dir, step)
    record_result(model_dir, "event", {"global_step": 10, "loss": 1.0}, f"{model_dir}/ckpt-10", 0.1)
    trigger = CheckpointEventTrigger(model_dir, name="event", poll_interval=0.05)
    assert asyncio.run(collect(trigger, [20])) == [20]


def test_checkpoints_from_events_keeps_each_checkpoint_of_this_model_dir_once():
    def event(step, model_dir="/m"):
        path = f"{model_dir}/ckpt-{step}"
        return {
            "from_trigger": True,
            "payload": {"model_dir": model_dir, "checkpoint_path": path, "global_step": step},
        }

    events = [event(20), event(0), event(20), event(5, "/other"), {"unrelated": 1}]
    assert checkpoints_from_events(events, "/m/") == [
        {"checkpoint_path": "/m/ckpt-0", "global_step": 0},
        {"checkpoint_path": "/m/ckpt-20", "global_step": 20},
    ]
