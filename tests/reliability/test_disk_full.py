"""A full disk while checkpointing (a 2 MiB tmpfs model dir): a clear error, no partial
checkpoint, the previous checkpoint intact, and training resumes from it once there is room."""

from __future__ import annotations

import os

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.errors import CheckpointError
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from tests.experiment.tiny_experiment import data, experiment_fn

pytestmark = pytest.mark.timeout(300)


def tiny_data_input():
    import tensorflow as tf

    x, _ = data(seed=5)
    return tf.data.Dataset.from_tensor_slices(x[:8]).batch(4)


def test_a_full_disk_is_a_clear_error_and_the_previous_checkpoint_stays_loadable(small_disk):
    model_dir = str(small_disk / "model")
    params = {"train_steps": 40, "save_checkpoints_steps": 20, "keep_checkpoint_max": None}
    experiment_fn(RunConfig(model_dir=model_dir), params).train()
    assert [c.global_step for c in list_checkpoints(model_dir)] == [0, 20, 40]

    filler = small_disk / "filler"
    more = {**params, "train_steps": 80}
    filling = {**more, "fill_disk_at_step": 50, "fill_disk_path": str(filler)}
    with pytest.raises(CheckpointError) as err:
        experiment_fn(RunConfig(model_dir=model_dir), filling).train()
    message = str(err.value)
    assert message.startswith(
        f"Could not write the checkpoint for step 60 in {model_dir} (the disk is full): "
    )
    assert message.endswith(
        f"Nothing was lost: {model_dir}/ckpt-40 is intact and training resumes from it once "
        "there is room."
    )
    # No trace of the failed save; the previous checkpoint restores.
    assert [c.global_step for c in list_checkpoints(model_dir)] == [0, 20, 40]
    assert not [n for n in os.listdir(model_dir) if n.startswith("ckpt-60")]
    estimator = experiment_fn(RunConfig(model_dir=model_dir), more).estimator
    predictions = list(estimator.predict(tiny_data_input, checkpoint_path=f"{model_dir}/ckpt-40"))
    assert len(predictions) == 8 and all(p.shape == (3,) for p in predictions)

    # a disk already full when training starts: a clear error before any step
    with pytest.raises(OSError, match="No space left to write the trainer lease"):
        experiment_fn(RunConfig(model_dir=model_dir), more).train()
    filler.unlink()  # room again: the same run resumes from step 40 and finishes
    experiment_fn(RunConfig(model_dir=model_dir), more).train()
    assert [c.global_step for c in list_checkpoints(model_dir)] == [0, 20, 40, 60, 80]
