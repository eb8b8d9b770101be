"""A record torn by a full disk or a kill never poisons a results file: the torn line is
skipped with a warning, and every record appended after it is read (local and gs://)."""

from __future__ import annotations

import errno
import json
import logging
import os

import pytest

from airflow_tfexp.experiment.evaluation.results import read_results, record_result, results_path
from airflow_tfexp.experiment.storage.fs import filesystem
from airflow_tfexp.experiment.storage.local import LOCAL


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


def test_a_record_torn_by_a_full_disk_and_later_evaluations(small_disk, caplog):
    """A real ENOSPC mid-append (a tmpfs with no free page left): the append fails with part
    of its line written; once space is freed, later evaluations are recorded and read, and the
    torn line is reported."""
    model_dir = str(small_disk / "model")
    path = results_path(model_dir, "c")
    record_result(model_dir, "c", {"global_step": 10, "loss": 1.0}, "ckpt-10", 0.5)
    # pad the file to 30 bytes short of a page: the next record needs a page there is none of
    size = os.path.getsize(path)
    padding = 4096 - 30 - size - len('{"global_step": 11, "pad": ""}\n')
    LOCAL.append_line(path, json.dumps({"global_step": 11, "pad": "x" * padding}))
    assert os.path.getsize(path) == 4096 - 30
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    with pytest.raises(OSError) as full:
        record_result(model_dir, "c", {"global_step": 20, "loss": 0.7}, "ckpt-20", 0.5)
    assert full.value.errno == errno.ENOSPC
    torn = open(path, "rb").read()
    assert len(torn) == 4096 and not torn.endswith(b"\n")  # part of the record, no newline
    filler.unlink()
    for step in (30, 40):
        record_result(model_dir, "c", {"global_step": step, "loss": 0.5}, f"ckpt-{step}", 0.5)
    with caplog.at_level(logging.WARNING):
        steps = [r["global_step"] for r in read_results(model_dir, "c")]
    assert steps == [10, 11, 30, 40]
    assert "results.jsonl: line 3 is not valid JSON" in caplog.text
