"""gs:// model dirs on a real GCS JSON-API server: staging, resume elsewhere (outages and kills:
tests/reliability/)."""

from __future__ import annotations

import uuid

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from airflow_tfexp.experiment.storage.fs import filesystem
from tests.experiment import tiny_experiment as tiny

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
