"""Checkpoint discovery, results files, export dirs and trainer/evaluator coordination."""

from __future__ import annotations

import os
import time

from airflow_tfexp.experiment.evaluation.coordination import (
    EvaluatorRegistration,
    protection_reason,
)
from airflow_tfexp.experiment.evaluation.results import record_result
from airflow_tfexp.experiment.export.export_dirs import (
    ExportTarget,
    garbage_collect_exports,
    list_exports,
)
from airflow_tfexp.experiment.storage.checkpoints import (
    CheckpointInfo,
    complete_checkpoints,
    is_complete,
    list_checkpoints,
    select_pending,
)
from airflow_tfexp.experiment.storage.files import append_jsonl, read_jsonl
from tests.experiment.fakes import write_checkpoint


def test_a_checkpoint_is_complete_only_with_its_index_every_shard_and_the_state():
    names = [
        "ckpt-10.index",
        "ckpt-10.data-00000-of-00001",
        "ckpt-20.data-00000-of-00001",  # index not written yet
        "ckpt-30.index",
        "ckpt-30.data-00000-of-00002",  # second shard missing
        "ckpt-40.index",
        "ckpt-40.data-00000-of-00002",
        "ckpt-40.data-00001-of-00002",
        "ckpt-50.index",  # whole, but the state file does not name it yet
        "ckpt-50.data-00000-of-00001",
        "checkpoint",
        "events.out.tfevents.1",
        "ckpt-7_temp",
    ]
    state = 'model_checkpoint_path: "ckpt-40"\nall_model_checkpoint_paths: "ckpt-40"\n'
    assert complete_checkpoints(names, state) == [10, 40]
    assert complete_checkpoints(names, 'model_checkpoint_path: "/m/ckpt-50"\n') == [10, 40, 50]
    assert complete_checkpoints(names, None) == []  # no state file: nothing is complete yet


def test_list_checkpoints_and_is_complete(tmp_path):
    write_checkpoint(str(tmp_path), 5)
    write_checkpoint(str(tmp_path), 15)
    os.unlink(tmp_path / "ckpt-15.data-00000-of-00001")
    assert list_checkpoints(str(tmp_path)) == [CheckpointInfo(5, str(tmp_path / "ckpt-5"))]
    assert is_complete(str(tmp_path / "ckpt-5")) and not is_complete(str(tmp_path / "ckpt-15"))
    assert list_checkpoints(str(tmp_path / "missing")) == []


def test_select_pending():
    checkpoints = [CheckpointInfo(s, f"ckpt-{s}") for s in (10, 20, 30)]
    assert select_pending(checkpoints, {10}, every_checkpoint=True) == checkpoints[1:]
    assert select_pending(checkpoints, {10}, every_checkpoint=False) == checkpoints[2:]
    assert select_pending(checkpoints, {30}, every_checkpoint=False) == []
    assert (
        select_pending(checkpoints, {30}, every_checkpoint=False, only_once=False)
        == checkpoints[2:]
    )


def test_a_torn_last_line_is_ignored(tmp_path):
    path = str(tmp_path / "r.jsonl")
    append_jsonl(path, {"a": 1})
    with open(path, "a") as handle:
        handle.write('{"a": 2, "b"')  # a writer killed mid-line
    assert read_jsonl(path) == [{"a": 1}]


def test_exports_appear_whole_and_are_garbage_collected(tmp_path):
    base = str(tmp_path / "export")
    paths = []
    for _ in range(3):
        target = ExportTarget(base)
        os.makedirs(target.temp_path)
        assert list_exports(base) == paths  # the temporary directory is never listed
        paths.append(target.commit())
    assert len(set(paths)) == 3  # same second: the later ones take the next timestamps
    assert all(len(os.path.basename(p)) == 10 for p in paths)
    assert garbage_collect_exports(base, 2) == paths[:1]
    assert list_exports(base) == paths[1:]


def test_a_live_evaluator_protects_what_it_still_needs(tmp_path):
    model_dir = str(tmp_path)
    every = EvaluatorRegistration(model_dir, "continuous", every_checkpoint=True)
    every.heartbeat()
    record_result(model_dir, "continuous", {"global_step": 10, "loss": 1.0}, "ckpt-10", 0.1)
    assert protection_reason(model_dir, 10) is None
    assert "has not evaluated it yet" in protection_reason(model_dir, 20)

    latest_only = EvaluatorRegistration(model_dir, "latest", every_checkpoint=False)
    latest_only.heartbeat(evaluating_step=10)
    assert "'latest' is evaluating it" in protection_reason(model_dir, 10)

    every.withdraw()
    latest_only.withdraw()
    assert protection_reason(model_dir, 20) is None


def test_a_stale_registration_protects_nothing(tmp_path):
    registration = EvaluatorRegistration(
        str(tmp_path), "crashed", every_checkpoint=True, stale_after_secs=60
    )
    registration.heartbeat()
    assert protection_reason(str(tmp_path), 5) is not None
    assert protection_reason(str(tmp_path), 5, now=time.time() + 61) is None
