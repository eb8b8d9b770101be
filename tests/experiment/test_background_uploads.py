"""gs:// checkpoint uploads run off the training thread, in order, and a failed one fails
training with its reason (the gs:// / local steps/s figure: bench/gcs_stall.py)."""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.hooks import TrainingHook
from airflow_tfexp.experiment.storage.checkpoints import latest_checkpoint, list_checkpoints
from airflow_tfexp.experiment.storage.fs import filesystem
from airflow_tfexp.experiment.storage.upload_queue import UploadError, UploadQueue
from tests.experiment import tiny_experiment as tiny


def test_uploads_run_in_order_and_nothing_runs_after_a_failure():
    queue = UploadQueue("gs://b/m")
    done: list[str] = []
    release = threading.Event()

    def upload(name):
        if name == "a":
            assert release.wait(10)
        if name == "b":
            raise OSError("403 Forbidden")
        done.append(name)

    for name in "abc":
        queue.submit(f"checkpoint {name}", upload, name)
    assert queue.pending() == 3  # queued: submit did not wait for "a"
    release.set()
    with pytest.raises(UploadError, match=r"Uploading checkpoint b to gs://b/m failed: .*403"):
        queue.wait()
    assert done == ["a"]  # "c" came after the failed "b": not uploaded
    queue.submit("checkpoint d", upload, "d")  # raised once: the queue is usable again
    queue.wait()
    assert done == ["a", "d"]


def test_a_failure_is_raised_by_the_next_submit_and_then_by_wait():
    queue = UploadQueue("gs://b/m")
    queue.submit("checkpoint a", _raise, OSError("disk gone"))
    deadline = time.monotonic() + 10
    while queue.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(UploadError, match="disk gone"):
        queue.submit("checkpoint b", lambda: None)
    with pytest.raises(UploadError, match="disk gone"):
        queue.wait()
    queue.wait()  # raised: gone


def test_an_interrupted_wait_leaves_the_upload_pending_for_the_next_wait():
    """A signal handler raising in the waiting thread (Airflow's SIGTERM, Ctrl-C) must not let
    training's cleanup wait think the running upload is done."""
    queue = UploadQueue("gs://b/m")
    release, done = threading.Event(), []
    queue.submit("checkpoint a", lambda: (release.wait(10), done.append("a")))

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            queue.wait()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert queue.pending() == 1
    threading.Timer(0.2, release.set).start()
    queue.wait()  # waits for it
    assert done == ["a"] and queue.pending() == 0


def _raise(exc):
    raise exc


class _ReleaseUploadAt(TrainingHook):
    """Lets a held upload go on once training has stepped `step`."""

    def __init__(self, step: int, release: threading.Event) -> None:
        self.step, self.release, self.steps_while_held = step, release, []

    def after_step(self, step, logs):
        if not self.release.is_set():
            self.steps_while_held.append(step)
        if step >= self.step:
            self.release.set()


@pytest.mark.slow
def test_training_steps_on_while_a_checkpoint_uploads(gcs_emulator, tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    from airflow_tfexp.experiment import KerasEstimator
    from airflow_tfexp.experiment.storage.gcs_staging import GcsStaging

    model_dir = f"gs://tfexp-test/background-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("TFEXP_STAGING_DIR", str(tmp_path / "staging"))
    release, seen_during_upload = threading.Event(), []
    push = GcsStaging.push_checkpoint

    def held_push(self, local_prefix):
        if local_prefix.endswith("ckpt-10"):
            # training must reach step 15 while this upload is still running: were the
            # upload on the training thread, this would time out
            assert release.wait(60), "training did not step on during the upload"
            seen_during_upload.append(latest_checkpoint(model_dir).global_step)
        return push(self, local_prefix)

    monkeypatch.setattr(GcsStaging, "push_checkpoint", held_push)
    hook = _ReleaseUploadAt(15, release)
    config = RunConfig(
        model_dir=model_dir, save_checkpoints_steps=10, keep_checkpoint_max=1, tf_config=""
    )
    KerasEstimator(tiny.model_fn, config=config).train(
        tiny.train_input_fn, hooks=[hook], max_steps=30
    )
    assert hook.steps_while_held[-1] == 15 and 11 in hook.steps_while_held
    # readers still had the whole step-0 checkpoint then: garbage collection deletes the
    # bucket's copy only after its successor is up, even with keep_checkpoint_max=1
    assert seen_during_upload == [0]
    # drained before train returned: the last checkpoint is in the bucket, the rest deleted
    assert [c.global_step for c in list_checkpoints(model_dir)] == [30]
    names = filesystem(model_dir).listdir(model_dir)
    assert sorted(n for n in names if n.startswith("ckpt-")) == [
        "ckpt-30.data-00000-of-00001",
        "ckpt-30.index",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("keep", [1, 5])
def test_a_failed_upload_fails_training_and_the_bucket_keeps_the_last_whole_checkpoint(
    gcs_emulator, tmp_path, monkeypatch, keep
):
    pytest.importorskip("tensorflow")
    from airflow_tfexp.experiment import KerasEstimator
    from airflow_tfexp.experiment.storage.gcs import GcsFileSystem

    model_dir = f"gs://tfexp-test/failed-upload-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("TFEXP_STAGING_DIR", str(tmp_path / "staging"))
    upload = GcsFileSystem.upload_file

    def failing_upload(self, local_path, path):
        if path.endswith("/ckpt-20.index"):
            raise PermissionError("403 POST: the service account lost storage.objects.create")
        return upload(self, local_path, path)

    monkeypatch.setattr(GcsFileSystem, "upload_file", failing_upload)
    config = RunConfig(
        model_dir=model_dir, save_checkpoints_steps=10, keep_checkpoint_max=keep, tf_config=""
    )
    steps = str(tmp_path / "steps.log")
    with pytest.raises(
        UploadError, match=r"checkpoint ckpt-20 .*ckpt-20\.index.*lost storage\.objects\.create"
    ):
        KerasEstimator(tiny.model_fn, config=config).train(
            tiny.train_input_fn, hooks=[tiny.StepLog(steps)], max_steps=50
        )
    with open(steps) as handle:
        assert max(int(line) for line in handle) == 30  # stopped at the next save
    assert latest_checkpoint(model_dir).global_step == 10  # no state names ckpt-20 or later
    # every checkpoint the bucket's state names is whole (with keep=1 the deletion of ckpt-10
    # was queued after ckpt-20's failed upload, so it never ran)
    state = filesystem(model_dir).read_bytes(f"{model_dir}/checkpoint").decode()
    named = set(re.findall(r'"(ckpt-\d+)"', state))
    names = set(filesystem(model_dir).listdir(model_dir))
    assert named and all(f"{n}.index" in names for n in named), (state, names)

    monkeypatch.setattr(GcsFileSystem, "upload_file", upload)
    monkeypatch.setenv("TFEXP_STAGING_DIR", str(tmp_path / "elsewhere"))
    resumed = str(tmp_path / "resumed.log")
    KerasEstimator(tiny.model_fn, config=config).train(
        tiny.train_input_fn, hooks=[tiny.StepLog(resumed)], max_steps=30
    )
    with open(resumed) as handle:
        assert int(handle.readline()) == 11  # resumed from the bucket's ckpt-10
    assert latest_checkpoint(model_dir).global_step == 30
