"""gs:// model dirs on a real GCS JSON-API server: staging, resume elsewhere, outages."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.checkpoints import list_checkpoints
from airflow_tfexp.experiment.coordination import read_completion_marker
from airflow_tfexp.experiment.fs import filesystem, join
from tests.experiment import tiny_experiment as tiny
from tests.experiment.processes import start_cli, wait_until

pytestmark = pytest.mark.slow


def gcs_dir(name):
    return f"gs://tfexp-test/{name}-{uuid.uuid4().hex[:8]}"


def test_training_resumes_on_another_machine_and_gc_reaches_the_bucket(
    gcs_emulator, tmp_path, monkeypatch
):
    pytest.importorskip("tensorflow")
    from airflow_tfexp.experiment import KerasEstimator

    model_dir = gcs_dir("resume")
    config = RunConfig(
        model_dir=model_dir, save_checkpoints_steps=10, keep_checkpoint_max=2, tf_config=""
    )
    monkeypatch.setenv("TFEXP_STAGING_DIR", str(tmp_path / "machine-a"))
    KerasEstimator(tiny.model_fn, config=config).train(tiny.train_input_fn, max_steps=30)
    assert [c.global_step for c in list_checkpoints(model_dir)] == [20, 30]

    monkeypatch.setenv("TFEXP_STAGING_DIR", str(tmp_path / "machine-b"))  # nothing staged here
    log = str(tmp_path / "steps.log")
    KerasEstimator(tiny.model_fn, config=config).train(
        tiny.train_input_fn, hooks=[tiny.StepLog(log)], max_steps=50
    )
    with open(log) as handle:
        assert int(handle.readline()) == 31  # resumed from the bucket's checkpoint 30
    assert [c.global_step for c in list_checkpoints(model_dir)] == [40, 50]
    names = filesystem(model_dir).listdir(model_dir)
    assert not [n for n in names if n.startswith(("ckpt-20.", "ckpt-30."))]  # deleted remotely too
    assert any(n.startswith("events.out.tfevents.") for n in names)  # summaries uploaded


def test_storage_outage_mid_training_is_retried_and_never_exposes_a_partial_checkpoint(
    gcs_emulator, tmp_path
):
    model_dir = gcs_dir("outage")
    params = {
        "train_steps": 200,
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
        time.sleep(4)
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
    assert read_completion_marker(model_dir)["global_step"] == 200
    assert [c.global_step for c in list_checkpoints(model_dir)] == list(range(0, 201, 10))
    assert looks > 10 and seen_partial == []
    # Every checkpoint in the bucket restores.
    experiment = tiny.experiment_fn(RunConfig(model_dir=model_dir, tf_config=""), params)
    assert experiment.evaluate_checkpoint(join(model_dir, "ckpt-100"))["global_step"] == 100
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator.host
