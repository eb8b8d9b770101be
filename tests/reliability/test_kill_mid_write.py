"""SIGKILL in the middle of writing an export (local and gs://) and in the middle of a
checkpoint upload to GCS: no partial export or checkpoint is ever visible, and the retry
completes."""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker
from airflow_tfexp.experiment.export.export_dirs import SAVED_MODEL_FILE, TEMP_PREFIX, list_exports
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from airflow_tfexp.experiment.storage.fs import filesystem, join
from tests.experiment import tiny_experiment as tiny
from tests.experiment.processes import kill_group, run_cli, start_cli, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
PARAMS = {"train_steps": 20, "save_checkpoints_steps": 10}


def kill_when(process, condition: Callable[[], bool], timeout: float = 120) -> bool:
    """SIGKILL `process` the moment `condition()` holds; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return True
        time.sleep(0.005)
    return False


def kill_mid_export(model_dir: str, log_path) -> None:
    """Start an export and kill it while its temporary copy exists (and after the kill still
    does: nothing was committed)."""
    base = join(model_dir, "export", "latest")
    fs = filesystem(model_dir)

    def exporting() -> bool:
        try:
            return any(n.startswith(TEMP_PREFIX) for n in fs.listdir(base))
        except FileNotFoundError:
            return False

    exporter = start_cli(model_dir, "export", PARAMS, log_path=log_path)
    try:
        assert kill_when(exporter, exporting), "the export finished before it could be killed"
    finally:
        kill_group(exporter)
    assert exporting()


def check_retry_exports_once(model_dir: str) -> None:
    base = join(model_dir, "export", "latest")
    assert list_exports(base) == []  # the killed export is not visible as one
    result = run_cli(model_dir, "export", PARAMS)
    assert result.returncode == 0, result.stderr[-3000:]
    (export,) = list_exports(base)
    assert SAVED_MODEL_FILE in filesystem(export).listdir(export)


def test_a_kill_during_a_local_export_leaves_no_partial_export_and_the_retry_completes(
    tmp_path,
):
    model_dir = str(tmp_path / "model")
    tiny.experiment_fn(RunConfig(model_dir=model_dir), PARAMS).train()
    kill_mid_export(model_dir, tmp_path / "export.log")
    check_retry_exports_once(model_dir)
    import tensorflow as tf

    (export,) = list_exports(join(model_dir, "export", "latest"))
    x, _ = tiny.data(seed=4)
    served = tf.saved_model.load(export).signatures["serving_default"](features=tf.constant(x[:2]))
    assert served["output_0"].shape == (2, 3)


def test_a_kill_during_a_gcs_export_upload_leaves_no_partial_export_and_the_retry_completes(
    gcs_emulator, tmp_path
):
    model_dir = f"gs://tfexp-test/kill-export-{uuid.uuid4().hex[:8]}"
    tiny.experiment_fn(RunConfig(model_dir=model_dir, tf_config=""), PARAMS).train()
    kill_mid_export(model_dir, tmp_path / "export.log")
    check_retry_exports_once(model_dir)


def test_a_kill_during_a_checkpoint_upload_leaves_no_partial_checkpoint(gcs_emulator, tmp_path):
    model_dir = f"gs://tfexp-test/kill-upload-{uuid.uuid4().hex[:8]}"
    params = {
        "train_steps": 60,
        "save_checkpoints_steps": 10,
        "keep_checkpoint_max": None,
        "step_sleep_secs": 0.02,
    }
    log_path = tmp_path / "trainer.log"
    trainer = start_cli(model_dir, "train", params, log_path=log_path)
    try:
        wait_until(lambda: len(list_checkpoints(model_dir)) >= 2, timeout=90, what="2 checkpoints")
        gcs_emulator.stop()
        # The next upload now fails and is being retried: kill the trainer in the middle of it.
        wait_until(
            lambda: "Transient storage error, retrying" in log_path.read_text(),
            timeout=60,
            what="an upload to retry",
        )
        os.killpg(trainer.pid, signal.SIGKILL)
        trainer.wait(timeout=30)
    finally:
        kill_group(trainer)
        gcs_emulator.start()
    fs = filesystem(model_dir)
    visible = list_checkpoints(model_dir)
    assert visible and visible[-1].global_step < 60
    for checkpoint in visible:  # every checkpoint a reader sees is whole
        names = fs.listdir(model_dir)
        base = checkpoint.checkpoint_path.rsplit("/", 1)[-1]
        assert f"{base}.index" in names and f"{base}.data-00000-of-00001" in names

    shutil.rmtree(
        os.environ["TFEXP_STAGING_DIR"], ignore_errors=True
    )  # resume on "another machine"
    result = run_cli(model_dir, "train", params, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_completion_marker(model_dir)["global_step"] == 60
    assert [c.global_step for c in list_checkpoints(model_dir)] == list(range(0, 61, 10))
    experiment = tiny.experiment_fn(RunConfig(model_dir=model_dir, tf_config=""), params)
    assert experiment.evaluate_checkpoint(join(model_dir, "ckpt-60"))["global_step"] == 60
