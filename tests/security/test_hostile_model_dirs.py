"""A hostile model dir changes nothing outside itself: checkpoint paths from its state file,
gs:// paths with `..` segments and object names with `..` never reach another directory."""

from __future__ import annotations

import hashlib
import os

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.errors import CheckpointError
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from tests.experiment.tiny_experiment import experiment_fn


def fingerprint(directory: str) -> dict[str, str]:
    found = {}
    for current, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(current, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, directory)] = hashlib.sha256(handle.read()).hexdigest()
    return found


def test_a_state_file_naming_another_model_dir_restores_and_deletes_nothing_there(tmp_path):
    victim, mine = str(tmp_path / "victim"), str(tmp_path / "mine")
    params = {"train_steps": 40, "keep_checkpoint_max": None}
    experiment_fn(RunConfig(model_dir=victim), params).train()
    assert [c.global_step for c in list_checkpoints(victim)] == [0, 20, 40]
    before = fingerprint(victim)
    os.makedirs(mine)
    with open(os.path.join(mine, "checkpoint"), "w") as handle:
        handle.write('model_checkpoint_path: "../victim/ckpt-40"\n')
        for step in (0, 20, 40):
            handle.write(f'all_model_checkpoint_paths: "../victim/ckpt-{step}"\n')

    hostile = experiment_fn(
        RunConfig(model_dir=mine), {"train_steps": 60, "keep_checkpoint_max": 1}
    )
    with pytest.raises(CheckpointError) as err:
        hostile.train()
    assert "names '" in str(err.value) and "victim/ckpt-" in str(err.value)
    assert "outside the model dir" in str(err.value)
    assert fingerprint(victim) == before  # nothing restored from, deleted or written there
    assert list_checkpoints(mine) == []


@pytest.mark.parametrize(
    "model_dir",
    [
        "gs://tfexp-test/../../../../tmp/x",
        "gs://tfexp-test/runs/../other-team",
        "gs://tfexp-test/./runs",
        "gs://tfexp-test/runs//a",
        "gs://tfexp-test//runs",
    ],
)
def test_gs_paths_with_dot_or_empty_segments_are_an_invalid_model_dir(model_dir, tmp_path):
    from airflow_tfexp.experiment.storage.gcs_staging import GcsStaging
    from airflow_tfexp.operators import TrainOperator

    message = "a gs:// path may not have '.', '..' or empty ('//') segments"
    with pytest.raises(ValueError, match="Invalid value for `model_dir`") as err:
        parse_model_dir(model_dir)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="Invalid value for `model_dir`"):
        TrainOperator(
            task_id="t",
            experiment_fn="tests.experiment.tiny_experiment:experiment_fn",
            model_dir=model_dir,
        )
    with pytest.raises(ValueError) as err:
        GcsStaging(model_dir, staging_root=str(tmp_path / "staging"))  # nor may staging
    assert message in str(err.value)
    assert not os.path.exists(tmp_path / "staging")


def test_remote_names_with_dot_segments_never_map_outside_the_staging_dir(gcs_emulator, tmp_path):
    from airflow_tfexp.experiment.storage.gcs_staging import GcsStaging

    root = tmp_path / "staging"
    staging = GcsStaging("gs://tfexp-test/hostile-model", staging_root=str(root))
    inside = staging.local_path("gs://tfexp-test/hostile-model/eval/events.out.tfevents.1")
    assert inside.startswith(str(root / "tfexp-test" / "hostile-model") + os.sep)
    for name in ("../../../../escaped.txt", "eval/../../other-model/checkpoint"):
        with pytest.raises(ValueError, match="is outside"):
            staging.local_path(f"gs://tfexp-test/hostile-model/{name}")
    with pytest.raises(ValueError, match="may not have '.', '..'"):
        staging.fetch_checkpoint("gs://tfexp-test/hostile-model/../victim/ckpt-40")
    assert list(tmp_path.rglob("escaped.txt")) == []
    with pytest.raises(ValueError, match=r"empty \('//'\) segments"):
        staging.fetch_checkpoint("gs://tfexp-test/hostile-model//ckpt-40")


def test_a_model_dir_named_like_another_dirs_fetched_copies_is_staged_apart(gcs_emulator, tmp_path):
    """gs://a/m keeps its copy of gs://a/other in the staging root's .fetched/, which no
    model dir can be staged at (gs://a/m/.fetched/a/other is staged under a/m/.fetched/...)."""
    from airflow_tfexp.experiment.storage.fs import filesystem
    from airflow_tfexp.experiment.storage.gcs_staging import GcsStaging

    root = str(tmp_path / "staging")
    for name in ("ckpt-5.index", "ckpt-5.data-00000-of-00001"):
        path = f"gs://tfexp-test/other/{name}"
        filesystem(path).write_bytes(path, b"the other dir's " + name.encode())
    staging = GcsStaging("gs://tfexp-test/m", staging_root=root)
    copy = staging.fetch_checkpoint("gs://tfexp-test/other/ckpt-5")
    twin = GcsStaging("gs://tfexp-test/m/.fetched/tfexp-test/other", staging_root=root)
    assert not os.path.commonpath([copy, twin.local]) == twin.local
    assert copy.startswith(os.path.join(root, ".fetched") + os.sep)
    with open(copy + ".index", "rb") as handle:
        assert handle.read() == b"the other dir's ckpt-5.index"


def test_a_state_file_reaching_another_dir_through_a_symlink_is_refused(tmp_path):
    victim, mine = str(tmp_path / "victim"), str(tmp_path / "mine")
    experiment_fn(RunConfig(model_dir=victim), {"train_steps": 20}).train()
    before = fingerprint(victim)
    os.makedirs(mine)
    os.symlink(victim, os.path.join(mine, "link"))
    with open(os.path.join(mine, "checkpoint"), "w") as handle:
        handle.write('model_checkpoint_path: "link/ckpt-20"\n')
        handle.write('all_model_checkpoint_paths: "link/ckpt-0"\n')
        handle.write('all_model_checkpoint_paths: "link/ckpt-20"\n')
    hostile = experiment_fn(
        RunConfig(model_dir=mine), {"train_steps": 60, "keep_checkpoint_max": 1}
    )
    with pytest.raises(CheckpointError, match="outside the model dir"):
        hostile.train()
    assert fingerprint(victim) == before
