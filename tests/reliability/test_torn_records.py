"""A record torn by a full disk or a kill never poisons a results file: the torn line is
skipped with a warning, and every record appended after it is read (local and gs://)."""

from __future__ import annotations

import logging

from airflow_tfexp.experiment.evaluation.results import read_results, record_result, results_path
from airflow_tfexp.experiment.storage.fs import filesystem


def test_records_after_a_torn_one_are_all_read(model_dir, caplog):
    record_result(model_dir, "c", {"global_step": 10, "loss": 1.0}, f"{model_dir}/ckpt-10", 0.5)
    path = results_path(model_dir, "c")
    fs = filesystem(path)
    # what ENOSPC mid-append leaves: half a record, no newline
    fs.write_bytes(path, (fs.read_bytes(path) or b"") + b'{"global_step": 20, "metr')
    for step in (30, 40):
        record_result(
            model_dir, "c", {"global_step": step, "loss": 0.5}, f"{model_dir}/ckpt-{step}", 0.5
        )
    with caplog.at_level(logging.WARNING):
        steps = [r["global_step"] for r in read_results(model_dir, "c")]
    assert steps == [10, 30, 40]
    assert "results.jsonl: line 2 is not valid JSON" in caplog.text
