"""A waiter's idle look at a model dir costs one metadata read of the checkpoint state (its
version), and still sees every new checkpoint, a deletion and the completion marker."""

from __future__ import annotations

import contextlib

from airflow_tfexp.experiment.evaluation.coordination import write_completion_marker
from airflow_tfexp.experiment.evaluation.model_dir_scan import scan_model_dir
from tests.experiment.fakes import update_state, write_checkpoint


@contextlib.contextmanager
def http_requests():
    """Every HTTP request the GCS client sends, as (method, URL)."""
    import requests

    sent: list[tuple[str, str]] = []
    original = requests.Session.request

    def request(self, method, url, *args, **kwargs):
        sent.append((method, url))
        return original(self, method, url, *args, **kwargs)

    requests.Session.request = request
    try:
        yield sent
    finally:
        requests.Session.request = original


def steps(scan):
    return [c.global_step for c in scan.checkpoints]


def test_an_idle_look_costs_one_read_and_every_change_is_seen(model_dir):
    write_checkpoint(model_dir, 10)
    update_state(model_dir, 10)
    first = scan_model_dir(model_dir, watching=True)
    assert steps(first) == [10]
    idle = scan_model_dir(model_dir, previous=first)
    assert (steps(idle), idle.requests) == ([10], 1)

    write_checkpoint(model_dir, 20)
    update_state(model_dir, 20)
    changed = scan_model_dir(model_dir, previous=idle)
    assert steps(changed) == [10, 20] and changed.requests > 1
    again = scan_model_dir(model_dir, previous=changed)
    assert (steps(again), again.requests) == ([10, 20], 1)

    # training ends with no new checkpoint: only the marker is new
    write_completion_marker(model_dir, 20, "input exhausted")
    completed = scan_model_dir(model_dir, previous=again)
    assert completed.completion is not None and completed.completion["global_step"] == 20


def test_on_gcs_an_idle_look_is_one_get_request(gcs_emulator):
    import uuid

    model_dir = f"gs://tfexp-test/watch-{uuid.uuid4().hex[:8]}"
    write_checkpoint(model_dir, 10)
    update_state(model_dir, 10)
    first = scan_model_dir(model_dir, watching=True)
    with http_requests() as sent:
        for _ in range(5):
            idle = scan_model_dir(model_dir, previous=first)
    assert steps(idle) == [10]
    assert len(sent) == 5 and {method for method, _ in sent} == {"GET"}
    # the state object's metadata (objects.get, Class B), never its content or a listing
    assert all(url.split("?")[0].endswith("%2Fcheckpoint") for _, url in sent)
    assert not any("alt=media" in url for _, url in sent)


def test_before_the_first_checkpoint_a_look_lists_and_sees_the_marker(model_dir):
    first = scan_model_dir(model_dir, watching=True)
    assert first.checkpoints == [] and first.completion is None
    write_completion_marker(model_dir, 0, "train_steps=0 reached")
    later = scan_model_dir(model_dir, previous=first)
    assert later.completion is not None
