"""Concurrent BestExporters (mapped evaluations of one model dir) keep the true best: the best
result is updated by compare-and-swap and an export beaten meanwhile is deleted (before, the
last writer's result was stored as "best" whatever its loss). Local and gs://."""

from __future__ import annotations

import os

import pytest

from airflow_tfexp.experiment.export.export_dirs import SAVED_MODEL_FILE, list_exports
from airflow_tfexp.experiment.export.exporters import BestExporter
from airflow_tfexp.experiment.storage.fs import filesystem, is_gcs, join
from tests.reliability.at_once import run_at_once

WRITERS = 4
ROUNDS = 5


class FileEstimator:
    """A bring-your-own estimator whose export is a SavedModel's files (no TensorFlow): the
    exporter only needs `export_saved_model`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def export_saved_model(self, export_dir_base, serving_input_fn=None, checkpoint_path=None):
        final = join(export_dir_base, f"{1_000_000_000 + self.step:010d}")
        # like a real export: written aside and renamed in locally; on GCS whole once its
        # saved_model.pb (written last) is there
        target = final if is_gcs(final) else join(export_dir_base, f"temp-{self.step}")
        fs = filesystem(final)
        fs.write_bytes(join(target, "variables", "variables.index"), b"index %d" % self.step)
        fs.write_bytes(join(target, SAVED_MODEL_FILE), b"model %d" % self.step)
        if target != final:
            os.rename(target, final)
        return final


def _export(base: str, writer: int, barrier) -> None:
    for round_number in range(ROUNDS):
        step = 10 * (writer + 1)
        barrier.wait(timeout=60)
        BestExporter("best", exports_to_keep=2).export(
            FileEstimator(step),
            join(base, f"round{round_number}"),
            f"ckpt-{step}",
            {"global_step": step, "loss": 1.0 - 0.1 * writer},
            False,
        )


@pytest.mark.slow
def test_concurrent_best_exporters_keep_the_true_best(model_dir):
    run_at_once(_export, [(model_dir, writer) for writer in range(WRITERS)])
    for round_number in range(ROUNDS):
        export_path = join(model_dir, f"round{round_number}")
        best = BestExporter.best_result(export_path)
        assert best["eval_result"]["loss"] == pytest.approx(1.0 - 0.1 * (WRITERS - 1))
        exports = list_exports(export_path)
        assert best["export_dir"] in exports, round_number
        assert 1 <= len(exports) <= 2


def test_a_retried_best_write_that_had_landed_keeps_its_export(model_dir):
    """A dropped connection after the server stored best_eval_result.json: the retry finds
    its own record there, and must not take it for a better one and delete its export."""
    exporter = BestExporter("best")
    base = join(model_dir, "export", "best")
    path = FileEstimator(10).export_saved_model(base)
    result = {"global_step": 10, "loss": 0.5}
    assert exporter._record_best(base, path, "ckpt-10", result)
    assert exporter._record_best(base, path, "ckpt-10", result)  # the retry
    assert BestExporter.best_result(base)["export_dir"] == path


def test_a_torn_best_result_names_its_file(tmp_path):
    base = str(tmp_path)
    filesystem(base).write_bytes(join(base, "best_eval_result.json"), b'{"eval_res')
    with pytest.raises(ValueError, match="best_eval_result.json is not a best result.*Delete it"):
        BestExporter.best_result(base)


def test_a_misspelt_metric_fails_at_the_first_export_listing_the_metrics(tmp_path):
    """metric_compare_fn("close_enuf") used to pass the first export and crash later with a
    bare KeyError."""
    from airflow_tfexp.experiment.export.exporters import metric_compare_fn

    exporter = BestExporter("best", compare_fn=metric_compare_fn("close_enuf", "max"))
    result = {"global_step": 10, "loss": 0.5, "accuracy": 0.9}
    with pytest.raises(ValueError) as raised:
        exporter.export(FileEstimator(10), str(tmp_path), "ckpt-10", result, False)
    assert "'close_enuf'" in str(raised.value) and "accuracy, global_step, loss" in str(
        raised.value
    )
    assert list_exports(str(tmp_path)) == []  # nothing exported under a wrong comparison


def test_a_temp_dir_another_writer_renames_while_sweeping_is_skipped(tmp_path, monkeypatch):
    """The concurrent test's race, made certain: a writer lists `temp-20` to sweep stale
    leftovers, and another writer renames it into its export before it is looked at."""
    from airflow_tfexp.experiment.export import export_dirs

    base = tmp_path / "export"
    (base / "temp-killed").mkdir(parents=True)
    os.utime(base / "temp-killed", (0, 0))  # a leftover of an export killed long ago
    listdir = os.listdir
    monkeypatch.setattr(export_dirs.os, "listdir", lambda path: [*listdir(path), "temp-20"])
    export_dirs.remove_stale_temp_dirs(str(base))
    assert listdir(base) == []
