"""Exporters: Latest, Best (persisted across restarts), Final; garbage collection."""

from __future__ import annotations

import os

import pytest

from airflow_tfexp.experiment import BestExporter, FinalExporter, LatestExporter, metric_compare_fn
from airflow_tfexp.experiment.export.export_dirs import list_exports
from tests.experiment.fakes import FakeEstimator


def export(exporter, estimator, base, step, loss, final=False, **extra):
    return exporter.export(
        estimator, base, f"ckpt-{step}", {"global_step": step, "loss": loss, **extra}, final
    )


def test_latest_exporter_keeps_exactly_exports_to_keep(tmp_path):
    estimator, base = FakeEstimator(tmp_path), str(tmp_path / "export" / "latest")
    exporter = LatestExporter("latest", exports_to_keep=2)
    paths = [export(exporter, estimator, base, step, 1.0) for step in (1, 2, 3)]
    assert list_exports(base) == paths[1:]


def test_best_exporter_exports_only_improvements_and_remembers_across_restarts(tmp_path):
    estimator, base = FakeEstimator(tmp_path), str(tmp_path / "export" / "best")
    first = BestExporter("best", exports_to_keep=2)
    assert export(first, estimator, base, 1, 0.9) is not None
    assert export(first, estimator, base, 2, 0.95) is None  # worse
    assert export(first, estimator, base, 3, 0.5) is not None

    restarted = BestExporter("best", exports_to_keep=2)  # a new process: a new exporter object
    assert export(restarted, estimator, base, 4, 0.7) is None  # worse than the stored best 0.5
    assert export(restarted, estimator, base, 5, 0.4) is not None
    assert [e["checkpoint_path"] for e in estimator.exports] == ["ckpt-1", "ckpt-3", "ckpt-5"]
    assert len(list_exports(base)) == 2
    assert BestExporter.best_result(base)["eval_result"]["global_step"] == 5


def test_best_exporter_with_a_metric_to_maximize(tmp_path):
    estimator, base = FakeEstimator(tmp_path), str(tmp_path / "b")
    exporter = BestExporter("b", compare_fn=metric_compare_fn("accuracy", "max"))
    assert export(exporter, estimator, base, 1, 1.0, accuracy=0.8)
    assert export(exporter, estimator, base, 2, 0.1, accuracy=0.7) is None
    assert export(exporter, estimator, base, 3, 2.0, accuracy=0.9)


def test_final_exporter_exports_only_the_final_model(tmp_path):
    estimator, base = FakeEstimator(tmp_path), str(tmp_path / "f")
    exporter = FinalExporter("final")
    assert export(exporter, estimator, base, 1, 1.0) is None
    assert os.path.isdir(export(exporter, estimator, base, 2, 1.0, final=True))


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: LatestExporter("a/b"), "exporter `name`"),
        (lambda: LatestExporter("x", exports_to_keep=0), "`exports_to_keep`"),
        (lambda: LatestExporter("x", serving_input_fn="spec"), "`serving_input_fn`"),
        (lambda: BestExporter("x", compare_fn=None), "`compare_fn`"),
        (lambda: metric_compare_fn("accuracy", "up"), "`mode`"),
    ],
)
def test_bad_exporter_arguments(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()
