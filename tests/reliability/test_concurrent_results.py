"""Concurrent evaluations never lose a record: mapped evaluations of one evaluator name append
to one results file at the same moment (8 processes, 5 rounds, local and gs://). On GCS, where
an object cannot be appended to, a rewrite without a generation precondition lost 1-3 of 8."""

from __future__ import annotations

import pytest

from airflow_tfexp.experiment.evaluation.results import read_results, record_result
from airflow_tfexp.experiment.storage.fs import filesystem
from tests.reliability.at_once import run_at_once

WRITERS = 8
ROUNDS = 5


def _record_rounds(model_dir: str, writer: int, barrier) -> None:
    for round_number in range(ROUNDS):
        barrier.wait(timeout=60)  # all writers append at the same moment
        step = 100 * (round_number + 1) + writer
        record_result(
            model_dir, f"round{round_number}", {"global_step": step, "loss": 0.5}, f"ckpt-{step}", 1
        )


@pytest.mark.slow
def test_concurrent_appends_keep_every_record(model_dir):
    run_at_once(_record_rounds, [(model_dir, writer) for writer in range(WRITERS)])
    found = {
        round_number: sorted(
            r["global_step"] for r in read_results(model_dir, f"round{round_number}")
        )
        for round_number in range(ROUNDS)
    }
    expected = {
        round_number: [100 * (round_number + 1) + writer for writer in range(WRITERS)]
        for round_number in range(ROUNDS)
    }
    assert found == expected  # 40 of 40, each once


def _increment(path: str, times: int, barrier) -> None:
    barrier.wait(timeout=60)
    for _ in range(times):
        filesystem(path).update_bytes(path, lambda current: str(int(current or 0) + 1).encode())


def test_concurrent_compare_and_swap_updates_lose_none(model_dir):
    """The update underneath (BestExporter, publishing, leases): 4 processes incrementing one
    counter 10 times each end at 40."""
    path = f"{model_dir}/counter"
    run_at_once(_increment, [(path, 10)] * 4)
    assert filesystem(path).read_bytes(path) == b"40"


def test_an_update_that_lost_the_race_is_made_again_on_the_newer_content(gcs_emulator):
    """On GCS a writer that slipped in between the read and the write is not overwritten."""
    path = "gs://tfexp-test/lost-race/counter"
    fs = filesystem(path)
    fs.write_bytes(path, b"1")
    seen = []

    def increment(current: bytes | None) -> bytes:
        seen.append(current)
        if len(seen) == 1:
            fs.write_bytes(path, b"10")  # another writer, between this one's read and write
        return str(int(current) + 1).encode()

    assert fs.update_bytes(path, increment)
    assert seen == [b"1", b"10"]
    assert fs.read_bytes(path) == b"11"
    assert fs.update_bytes(path, lambda current: None) is False  # no change, nothing written


def test_a_lock_file_planted_as_a_link_or_a_dir_is_a_clear_error(tmp_path):
    from airflow_tfexp.experiment.errors import UnsafeModelDirError

    target = tmp_path / "elsewhere"
    target.write_text("not yours")
    (tmp_path / ".run.json.lock").symlink_to(target)
    (tmp_path / ".LATEST.lock").mkdir()
    for name, what in (("run.json", "a link"), ("LATEST", "not a file")):
        with pytest.raises(UnsafeModelDirError, match=f"is {what}.*Remove it"):
            filesystem(str(tmp_path)).update_bytes(str(tmp_path / name), lambda raw: b"{}")
    assert target.read_text() == "not yours"
