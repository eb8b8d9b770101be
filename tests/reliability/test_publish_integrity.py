"""Publishing is monotonic and exclusive: re-running an old day never rolls production back
(unless asked to), and two publishers at once get two distinct versions, each byte-identical to
its own export (before, both were told "version 1" and version 1 mixed their files)."""

from __future__ import annotations

import json
import logging
import os

import pytest

from airflow_tfexp.experiment.retraining.publishing import (
    OlderThanPublishedError,
    latest_published,
    publish_export,
    published_versions,
)
from airflow_tfexp.experiment.storage.fs import filesystem, join
from tests.reliability.at_once import run_at_once

FILES = ("saved_model.pb", "fingerprint.pb", "variables/variables.index",
         "variables/variables.data-00000-of-00001")  # fmt: skip
ROUNDS = 10


def fake_export(directory: str, seed: int) -> str:
    """An export dir with a SavedModel's files (distinct bytes per seed; no TensorFlow)."""
    fs = filesystem(directory)
    for number, name in enumerate(FILES):
        size = 300_000 if name.endswith("00001") else 2_000
        fs.write_bytes(join(directory, *name.split("/")), os.urandom(size) + bytes([seed, number]))
    return directory


def tree(directory: str) -> dict[str, bytes]:
    fs = filesystem(directory)
    return {name: fs.read_bytes(join(directory, *name.split("/"))) for name in FILES}


def test_an_older_candidate_does_not_roll_production_back(model_dir, caplog):
    publish_dir = join(model_dir, "published")
    day1 = fake_export(join(model_dir, "day1", "export", "1"), 1)
    day2 = fake_export(join(model_dir, "day2", "export", "1"), 2)
    publish_export(day1, publish_dir, {"logical_date": "2026-11-01T00:00:00+00:00"})
    publish_export(day2, publish_dir, {"logical_date": "2026-11-02T00:00:00+00:00"})
    with pytest.raises(OlderThanPublishedError) as raised:
        publish_export(day1, publish_dir, {"logical_date": "2026-11-01T00:00:00+00:00"})
    message = str(raised.value)
    assert day1 in message and day2 in message and "allow_rollback=True" in message
    assert latest_published(publish_dir)["version"] == 2
    # a retry of the newest publish is not "older": it keeps its version
    assert (
        publish_export(day2, publish_dir, {"logical_date": "2026-11-02T00:00:00+00:00"})["version"]
        == 2
    )
    with caplog.at_level(logging.INFO):
        pointer = publish_export(
            day1, publish_dir, {"logical_date": "2026-11-01T00:00:00+00:00"}, allow_rollback=True
        )
    assert (pointer["version"], latest_published(publish_dir)["version"]) == (1, 1)
    assert published_versions(publish_dir) == [1, 2]  # the rollback reuses version 1
    assert "rolled back to version 1" in caplog.text


def _publish_rounds(base: str, writer: int, barrier) -> None:
    for round_number in range(ROUNDS):
        export = join(base, f"round{round_number}", f"run{writer}", "export")
        barrier.wait(timeout=60)  # both publish at the same moment
        publish_export(export, join(base, f"round{round_number}", "published"), {"writer": writer})


@pytest.mark.slow
def test_two_publishers_at_once_get_distinct_whole_versions(model_dir):
    for round_number in range(ROUNDS):
        for writer in range(2):
            fake_export(join(model_dir, f"round{round_number}", f"run{writer}", "export"), writer)
    run_at_once(_publish_rounds, [(model_dir, 0), (model_dir, 1)], timeout=300)
    for round_number in range(ROUNDS):
        base = join(model_dir, f"round{round_number}")
        publish_dir = join(base, "published")
        assert published_versions(publish_dir) == [1, 2], round_number
        sources = set()
        for version in (1, 2):
            record = filesystem(publish_dir).read_bytes(
                join(publish_dir, str(version), "assets.extra", "published.json")
            )
            writer = int(json.loads(record)["writer"])
            sources.add(writer)
            source = join(base, f"run{writer}", "export")
            assert tree(join(publish_dir, str(version))) == tree(source), (round_number, version)
        assert sources == {0, 1}
        assert latest_published(publish_dir)["version"] in (1, 2)


@pytest.mark.parametrize("moment", ["before the claim", "after the copy"])
def test_an_older_model_never_stays_the_highest_version(model_dir, monkeypatch, moment):
    """Parallel backfills: day 3 publishes while day 2 is midway. TF Serving serves the
    highest numbered version, so day 2 must not end as one (it is refused before it becomes
    visible, or withdrawn if LATEST moved after its copy)."""
    from airflow_tfexp.experiment.retraining import publishing

    publish_dir = join(model_dir, "published")
    day2 = fake_export(join(model_dir, "day2", "export", "1"), 2)
    day3 = fake_export(join(model_dir, "day3", "export", "1"), 3)
    name = "_claim_version" if moment == "before the claim" else "_copy_tree"
    original = getattr(publishing, name)

    def day3_meanwhile(*args):
        result = original(*args) if name == "_copy_tree" else None
        monkeypatch.setattr(publishing, name, original)
        publish_export(day3, publish_dir, {"logical_date": "2026-11-03T00:00:00+00:00"})
        return result if name == "_copy_tree" else original(*args)

    monkeypatch.setattr(publishing, name, day3_meanwhile)
    with pytest.raises(OlderThanPublishedError, match="is older than version"):
        publish_export(day2, publish_dir, {"logical_date": "2026-11-02T00:00:00+00:00"})
    highest = published_versions(publish_dir)[-1]
    assert latest_published(publish_dir)["source"] == day3
    assert tree(join(publish_dir, str(highest))) == tree(day3)


def test_a_slow_newer_publisher_with_the_lower_number_withdraws_the_older_above(
    model_dir, monkeypatch
):
    """Day 3 claims version 1 and copies slowly; day 2 claims 2 and finishes first. When day 3
    moves LATEST, day 2's version 2 (older, yet the highest number) is withdrawn."""
    from airflow_tfexp.experiment.retraining import publishing

    publish_dir = join(model_dir, "published")
    day2 = fake_export(join(model_dir, "day2", "export", "1"), 2)
    day3 = fake_export(join(model_dir, "day3", "export", "1"), 3)
    original = publishing._copy_tree

    def day2_overtakes(source, destination, record, before_visible):
        monkeypatch.setattr(publishing, "_copy_tree", original)
        publish_export(day2, publish_dir, {"logical_date": "2026-11-02T00:00:00+00:00"})
        original(source, destination, record, before_visible)

    monkeypatch.setattr(publishing, "_copy_tree", day2_overtakes)
    pointer = publish_export(day3, publish_dir, {"logical_date": "2026-11-03T00:00:00+00:00"})
    assert pointer["version"] == 1
    assert published_versions(publish_dir) == [1]  # version 2 (day 2) withdrawn
    assert tree(join(publish_dir, "1")) == tree(day3)


def test_a_retry_of_an_older_publish_withdraws_the_copy_its_killed_try_left(model_dir):
    """A publisher killed after its (older) version became visible, before LATEST: its retry
    is refused, and takes the copy out of service."""
    from airflow_tfexp.experiment.retraining import publishing

    publish_dir = join(model_dir, "published")
    day2 = fake_export(join(model_dir, "day2", "export", "1"), 2)
    day3 = fake_export(join(model_dir, "day3", "export", "1"), 3)
    publish_export(day3, publish_dir, {"logical_date": "2026-11-03T00:00:00+00:00"})
    record = {"source": day2, "logical_date": "2026-11-02T00:00:00+00:00"}
    publishing._copy_tree(day2, join(publish_dir, "2"), json.dumps(record).encode(), lambda: None)
    assert published_versions(publish_dir) == [1, 2]  # what the killed try left
    with pytest.raises(OlderThanPublishedError):
        publish_export(day2, publish_dir, {"logical_date": "2026-11-02T00:00:00+00:00"})
    assert published_versions(publish_dir) == [1]
