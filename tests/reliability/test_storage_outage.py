"""Storage faults: the GCS server (gcp-storage-emulator) stopped for 10 s during training and
during sensing; both carry on once it returns, with their retries logged."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from airflow_tfexp.experiment.storage.fs import filesystem, join
from tests.experiment import tiny_experiment as tiny
from tests.experiment.fakes import write_checkpoint
from tests.experiment.processes import start_cli, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
OUTAGE_SECS = 10


def gcs_dir(name: str) -> str:
    return f"gs://tfexp-test/{name}-{uuid.uuid4().hex[:8]}"


def test_storage_outage_mid_training_is_retried_and_never_exposes_a_partial_checkpoint(
    gcs_emulator, tmp_path
):
    model_dir = gcs_dir("outage")
    params = {
        "train_steps": 120,
        "save_checkpoints_steps": 10,
        "keep_checkpoint_max": None,
        "step_sleep_secs": 0.03,
    }
    trainer = start_cli(model_dir, "train", params, log_path=tmp_path / "trainer.log")
    seen_partial, looks = [], 0
    stop = threading.Event()

    def reader():  # what an evaluator sees, every 50 ms
        nonlocal looks
        while not stop.is_set():
            try:
                for checkpoint in list_checkpoints(model_dir):
                    fs = filesystem(model_dir)
                    for suffix in (".index", ".data-00000-of-00001"):
                        if fs.read_bytes(checkpoint.checkpoint_path + suffix) is None:
                            seen_partial.append(checkpoint.checkpoint_path + suffix)
                looks += 1
            except Exception:  # noqa: BLE001 - the server is down on purpose
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=reader, daemon=True)
    watcher.start()
    try:
        wait_until(
            lambda: len(list_checkpoints(model_dir)) >= 3, timeout=90, what="three checkpoints"
        )
        gcs_emulator.stop()  # mid-training: uploads fail with connection errors
        time.sleep(OUTAGE_SECS)
        gcs_emulator.start()  # same port, same data
        trainer.wait(timeout=180)
    finally:
        stop.set()
        watcher.join(timeout=10)
        if trainer.poll() is None:
            trainer.kill()
    log = (tmp_path / "trainer.log").read_text()
    assert trainer.returncode == 0, log[-3000:]
    assert "Transient storage error, retrying" in log
    assert read_completion_marker(model_dir)["global_step"] == 120
    assert [c.global_step for c in list_checkpoints(model_dir)] == list(range(0, 121, 10))
    assert looks > 10 and seen_partial == []
    # Every checkpoint in the bucket restores.
    experiment = tiny.experiment_fn(RunConfig(model_dir=model_dir, tf_config=""), params)
    assert experiment.evaluate_checkpoint(join(model_dir, "ckpt-100"))["global_step"] == 100
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator.host


def test_a_storage_outage_while_sensing_is_retried_and_the_trigger_fires_once_it_returns(
    gcs_emulator,
):
    import logging

    from airflow_tfexp.triggers.checkpoint import CheckpointTrigger

    retries: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: retries.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("airflow_tfexp.experiment.storage.gcs").addHandler(handler)

    model_dir = gcs_dir("sensing")
    write_checkpoint(model_dir, 0)
    trigger = CheckpointTrigger(model_dir, after_step=0, poll_interval=0.5)

    async def sense() -> dict:
        waiting = asyncio.create_task(anext(trigger.run()))
        await asyncio.sleep(1.5)
        assert not waiting.done()  # nothing new yet
        await asyncio.to_thread(gcs_emulator.stop)
        await asyncio.sleep(OUTAGE_SECS)
        assert not waiting.done()  # the outage did not end the wait (nor fail it)
        await asyncio.to_thread(gcs_emulator.start)
        await asyncio.to_thread(write_checkpoint, model_dir, 20)
        event = await asyncio.wait_for(waiting, timeout=60)
        return event.payload

    try:
        payload = asyncio.run(sense())
    finally:
        logging.getLogger("airflow_tfexp.experiment.storage.gcs").removeHandler(handler)
    assert payload["status"] == "success", payload
    assert [c["global_step"] for c in payload["checkpoints"]] == [20]
    assert any(m.startswith("Transient storage error, retrying with backoff") for m in retries)
