"""Triggers watching one model dir in one event loop share one look per poll instant, and a
shared look is never older than the one a trigger would have made alone."""

from __future__ import annotations

import asyncio
import time

from airflow_tfexp.experiment.evaluation.model_dir_scan import ModelDirScan
from airflow_tfexp.triggers._shared_looks import SharedLooks, look_key
from airflow_tfexp.triggers.checkpoint import CheckpointTrigger
from airflow_tfexp.triggers.checkpoint_event import CheckpointEventTrigger
from tests.experiment.fakes import write_checkpoint

SCANS: list[str] = []  # the model dir of every look actually made


class CountedTrigger(CheckpointTrigger):
    def _scan(self, previous):
        SCANS.append(self.model_dir)
        return super()._scan(previous)


class CountedEventTrigger(CheckpointEventTrigger):
    def _scan(self, previous):
        SCANS.append(self.model_dir)
        return super()._scan(previous)


def test_waits_on_one_model_dir_share_a_look_and_each_still_fires_within_an_interval(tmp_path):
    shared_dir, other_dir = str(tmp_path / "shared"), str(tmp_path / "other")
    for directory in (shared_dir, other_dir):
        write_checkpoint(directory, 10)
    interval = 0.25
    SCANS.clear()

    async def scenario():
        sensors = [CountedTrigger(shared_dir, after_step=10, poll_interval=interval) for _ in "abc"]
        events = CountedEventTrigger(shared_dir, name=None, poll_interval=interval)
        alone = CountedTrigger(other_dir, after_step=10, poll_interval=interval)
        fired: dict[str, float] = {}

        async def fires(label, trigger, events=1):
            stream = trigger.run()
            for _ in range(events):
                await anext(stream)
            fired[label] = time.monotonic()

        tasks = [asyncio.create_task(fires(f"sensor-{i}", t)) for i, t in enumerate(sensors)]
        tasks.append(asyncio.create_task(fires("alone", alone)))
        tasks.append(asyncio.create_task(fires("events", events, 2)))  # steps 10, then 20
        await asyncio.sleep(8 * interval)  # eight poll instants of idle looks
        assert not [t for t in tasks[:3] if t.done()]
        idle_scans = SCANS.count(shared_dir)
        alone_scans = SCANS.count(other_dir)
        written = time.monotonic()
        await asyncio.to_thread(write_checkpoint, shared_dir, 20)
        await asyncio.to_thread(write_checkpoint, other_dir, 20)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return idle_scans, alone_scans, {label: at - written for label, at in fired.items()}

    idle_scans, alone_scans, latency = asyncio.run(scenario())
    # four triggers on one dir: their first looks (each at its own start), then one look per
    # instant like the lone trigger (whose grid may have had one instant fewer by then); not
    # four per instant, which would be over 30
    assert alone_scans >= 7
    assert idle_scans <= alone_scans + 4, (idle_scans, alone_scans)
    for label in ("sensor-0", "sensor-1", "sensor-2", "alone", "events"):
        assert latency[label] < interval + 1.0, latency  # within one interval (+ loop slack)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_look_started_before_a_trigger_wanted_its_look_is_not_shared():
    clock, made = _Clock(), []
    looks = SharedLooks(clock)
    key = look_key("/m", None, None)

    def scan(previous):
        made.append(clock.now)
        return ModelDirScan([], None, None, requests=1, model_dir="/m")

    async def scenario():
        with looks.watching(key):
            await looks.look(key, 100.0, scan)  # made at 100
            await looks.look(key, 100.0, scan)  # wanted at 100: the look made at 100 serves
            clock.now = 100.5
            await looks.look(key, 100.2, scan)  # that look is older than wanted: a new one
        return looks.looks_made(key)

    assert asyncio.run(scenario()) == 0  # nobody watches any more: its state is gone
    assert made == [100.0, 100.5]


def test_a_trigger_never_gets_a_look_built_on_a_scan_older_than_its_wait():
    """A look while the checkpoint state is unchanged reuses the last one's findings, results
    included; a trigger that began waiting later must not get findings that predate it, even
    from a look that started after it wanted one (the race a loaded machine exposed)."""
    clock = _Clock()
    looks = SharedLooks(clock)
    key = look_key("/m", "ev", None)
    made: list[tuple[float, str]] = []  # (when, "whole" or "reused")

    def scan(previous):
        made.append((clock.now, "whole" if previous is None else "reused"))
        return ModelDirScan([], None, None, requests=1, model_dir="/m")

    async def scenario():
        with looks.watching(key):
            await looks.look(key, 100.0, scan, based_since=100.0)  # A's first: whole
            clock.now = 101.0
            await looks.look(key, 101.0, scan, based_since=100.0)  # A again: reuses it
            clock.now = 102.0  # B begins to wait at 102; a look at 102 builds on 100's
            await looks.look(key, 102.0, scan, based_since=100.0)
            await looks.look(key, 102.0, scan, based_since=102.0)  # B: not that one, a whole
            clock.now = 103.0
            await looks.look(key, 103.0, scan, based_since=100.0)  # A builds on B's now
            await looks.look(key, 103.0, scan, based_since=102.0)  # and B shares that look

    asyncio.run(scenario())
    assert made == [
        (100.0, "whole"),
        (101.0, "reused"),
        (102.0, "reused"),
        (102.0, "whole"),
        (103.0, "reused"),
    ]


def test_grids_align_per_model_dir_and_spread_across_model_dirs():

    clock = _Clock()
    looks = SharedLooks(clock)
    key = look_key("/models/a", "continuous", None)
    every_10 = looks.next_instant(key, 10.0)
    every_5 = looks.next_instant(key, 5.0)
    assert clock.now < every_5 <= every_10 <= clock.now + 10.0
    assert (every_10 - every_5) % 5.0 < 1e-6  # a 10 s grid is on the 5 s grid of its key
    phases = {
        round(looks.next_instant(look_key(f"/models/{i}", None, None), 10.0), 3) for i in range(50)
    }
    assert len(phases) > 40  # other model dirs look at other instants
    # a connection's looks never serve another connection's triggers
    assert look_key("gs://b/m", None, "team_a") != look_key("gs://b/m/", None, "team_b")


def test_a_trigger_joining_a_group_sees_the_evaluators_latest_results(tmp_path):
    """The group's last look is reused while the checkpoint state is unchanged, but recording
    a result does not change it: a joiner's first look must still read the results."""
    from airflow_tfexp.experiment.evaluation.results import record_result

    model_dir = str(tmp_path / "m")
    for step in (10, 20):
        write_checkpoint(model_dir, step)
    record_result(model_dir, "ev", {"global_step": 10}, f"{model_dir}/ckpt-10", 0.0)
    interval = 0.1

    async def scenario():
        waiting = CheckpointTrigger(
            model_dir, name="ev", poll_interval=interval, wait_for_training_complete=True
        )
        group = asyncio.create_task(anext(waiting.run()))
        await asyncio.sleep(3 * interval)  # the group's look: evaluated up to 10
        await asyncio.to_thread(
            record_result, model_dir, "ev", {"global_step": 20}, f"{model_dir}/ckpt-20", 0.0
        )
        joiner = asyncio.create_task(
            anext(CheckpointTrigger(model_dir, name="ev", poll_interval=interval).run())
        )
        await asyncio.sleep(5 * interval)
        fired = joiner.done()
        for task in (group, joiner):
            task.cancel()
        return fired

    assert not asyncio.run(scenario())  # nothing newer than the evaluator's step 20
