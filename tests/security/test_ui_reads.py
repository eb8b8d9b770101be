"""The Experiments pages read only regular files inside the run's model dir, of bounded size,
only from model dirs that belong to the DAG being viewed; a malformed record is a problem line,
never an error. (On the real API server: tests/security/test_attacks.py.)"""

from __future__ import annotations

import json
import math
import os
import threading
import time

import pytest

from airflow_tfexp.experiment.storage.ownership import OWNER_FILE, claim_model_dir
from airflow_tfexp.plugins.app import render_page, run_view, templates
from airflow_tfexp.plugins.run_data import read_run_data

SECRET = "admin: s3cret-password"


@pytest.fixture
def model_dir(tmp_path) -> str:
    path = tmp_path / "model"
    path.mkdir()
    claim_model_dir(str(path), "mine")
    return str(path)


def write(model_dir: str, name: str, data: bytes | str) -> str:
    path = os.path.join(model_dir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    return path


def read(model_dir: str, **kwargs):
    """read_run_data as the pages call it, in a thread: a read that hangs fails the test."""
    found = {}
    worker = threading.Thread(
        target=lambda: found.update(data=read_run_data(model_dir, {"mine"}, **kwargs)), daemon=True
    )
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "reading the model dir hung"
    return found["data"]


def page(data) -> str:
    """The run page and its JSON, as the API server would send them (strict JSON: no NaN)."""
    json.dumps(data.as_dict(), allow_nan=False)
    return render_page(templates(), "run.html", dag_id="d", run_id="r", models=run_view([data]))


def test_run_json_linked_to_a_secret_outside_the_model_dir_is_not_served(model_dir, tmp_path):
    secret = write(str(tmp_path), "passwords.json", json.dumps({"admin": SECRET}))
    os.symlink(secret, os.path.join(model_dir, "run.json"))
    data = read(model_dir)
    assert data.lineage is None
    assert any("run.json links outside the model dir" in p for p in data.problems)
    assert SECRET not in json.dumps(data.as_dict()) and SECRET not in page(data)


def test_a_linked_eval_dir_leading_out_is_not_listed_or_read(model_dir, tmp_path):
    outside = tmp_path / "other_team" / "eval_x"
    write(str(outside), "results.jsonl", '{"global_step": 7, "metrics": {"loss": 0.1}}\n')
    os.symlink(str(outside), os.path.join(model_dir, "eval_x"))
    data = read(model_dir)
    assert data.evaluations == {}
    assert any("/eval_x/" in p and "links outside the model dir" in p for p in data.problems)


def test_a_fifo_named_like_an_event_file_does_not_hang_the_page(model_dir):
    os.mkfifo(os.path.join(model_dir, "events.out.tfevents.1.host"))
    started = time.monotonic()
    data = read(model_dir)
    assert time.monotonic() - started < 10
    assert any("is a FIFO, not a regular file: not read" in p for p in data.problems)


def test_a_link_to_dev_zero_is_not_read(model_dir):
    os.makedirs(os.path.join(model_dir, "eval_z"))
    os.symlink("/dev/zero", os.path.join(model_dir, "eval_z", "results.jsonl"))
    os.symlink("/dev/zero", os.path.join(model_dir, "blessing.json"))
    data = read(model_dir)
    problems = "\n".join(data.problems)
    assert "eval_z/results.jsonl links outside the model dir (to /dev/zero)" in problems
    assert "blessing.json links outside the model dir" in problems


def test_a_file_over_the_size_cap_is_skipped_and_reported(model_dir):
    write(model_dir, "events.out.tfevents.1.host", b"\0" * (3 * 2**20))
    write(model_dir, "eval_c/results.jsonl", '{"global_step": 1, "metrics": {"loss": 1.0}}\n')
    data = read(model_dir, max_bytes=2 * 2**20)
    assert any("larger than [tfexp] ui_max_file_mb = 2 MB, not read" in p for p in data.problems)
    assert [r["global_step"] for r in data.evaluations["c"]] == [1]  # the rest still read


def event_file(points: int) -> bytes:
    """A TensorBoard event file of `points` scalar "loss" summaries (TF1 simple_value)."""
    import struct

    def field(number: int, wire: int, payload: bytes) -> bytes:
        return bytes([number << 3 | wire]) + payload

    def varint(value: int) -> bytes:
        out = b""
        while True:
            byte, value = value & 0x7F, value >> 7
            out += bytes([byte | (0x80 if value else 0)])
            if not value:
                return out

    records = []
    for step in range(points):
        value = field(1, 2, varint(4) + b"loss") + field(
            2, 5, struct.pack("<f", math.sin(step / 500))
        )
        summary = field(1, 2, varint(len(value)) + value)
        event = field(2, 0, varint(step)) + field(5, 2, varint(len(summary)) + summary)
        records.append(struct.pack("<Q", len(event)) + b"\0" * 4 + event + b"\0" * 4)
    return b"".join(records)


def test_200k_points_are_drawn_as_at_most_2000_keeping_the_first_the_last_and_the_extremes(
    model_dir,
):
    write(model_dir, "events.out.tfevents.1.host", event_file(200_000))
    data = read(model_dir)
    loss = data.training["loss"]
    assert len(loss) <= 2000 and data.downsampled == {"loss": 200_000}
    assert loss[0][0] == 0 and loss[-1][0] == 199_999
    values = [v for _, v in loss]
    assert max(values) == pytest.approx(1.0, abs=1e-4) and min(values) == pytest.approx(
        -1.0, abs=1e-4
    )
    html = page(data)
    assert html.count('class="train-point"') == len(loss)
    assert len(html) < 2_000_000  # was 20 MB


MALFORMED_RESULTS = [
    {"global_step": 1, "metrics": {"loss": "nan"}},
    {"global_step": "2", "metrics": {"loss": 1.0}},
    {"global_step": None, "metrics": {"loss": 1.0}},
    {"global_step": 4, "metrics": [1, 2]},
    {"global_step": 5, "metrics": {"loss": 1e308}},
    {"global_step": 6, "metrics": {"loss": -1e308}},
    {"global_step": 7, "metrics": {"loss": 0.5}, "duration_secs": "slow"},
    {"global_step": 8, "metrics": {"loss": 0.25}, "checkpoint_path": ["x"]},
    {"global_step": True, "metrics": {"loss": 0.5}},
]


@pytest.mark.parametrize("record", MALFORMED_RESULTS, ids=lambda r: json.dumps(r)[:50])
def test_each_malformed_result_is_a_problem_line_and_the_rest_renders(model_dir, record):
    good = {"global_step": 10, "metrics": {"loss": 0.1}}
    write(model_dir, "eval_c/results.jsonl", "\n".join(json.dumps(r) for r in (record, good)))
    data = read(model_dir)
    html = page(data)
    assert 'data-step="10"' in html  # the good record is in the table and the chart
    big = record.get("metrics") in ({"loss": 1e308}, {"loss": -1e308})
    assert big or any("results.jsonl: line 1" in p for p in data.problems), data.problems
    if big:
        assert "point(s) not drawn" in html


@pytest.mark.parametrize(
    "name, content",
    [
        ("run.json", "5"),
        ("run.json", '{"published": "yes", "warm_start": 3}'),
        ("blessing.json", '"blessed"'),
        ("blessing.json", '{"blessed": "maybe"}'),
        ("run.json", "[" * 100_000),
        ("run.json", "NaN"),
    ],
)
def test_malformed_lineage_and_blessing_are_problem_lines(model_dir, name, content):
    write(model_dir, name, content)
    write(model_dir, "eval_c/results.jsonl", '{"global_step": 3, "metrics": {"loss": NaN}}\n')
    data = read(model_dir)
    html = page(data)
    assert 'data-step="3"' in html
    assert any(name in p for p in data.problems), data.problems


def test_a_model_dir_of_another_experiment_is_not_shown(tmp_path):
    theirs = str(tmp_path / "theirs")
    claim_model_dir(theirs, "team_b")
    write(theirs, "run.json", json.dumps({"params": {"secret": SECRET}}))
    data = read_run_data(theirs, {"team_a"})
    assert data.lineage is None and data.evaluations == {}
    assert data.problems == [
        f"{theirs} belongs to the experiment 'team_b', not to this DAG's (team_a): not shown"
    ]


def test_an_unstamped_model_dir_with_files_is_not_shown_and_an_empty_one_says_so(tmp_path):
    legacy = str(tmp_path / "legacy")
    write(legacy, "run.json", json.dumps({"params": {"secret": SECRET}}))
    data = read_run_data(legacy, {"team_a"})
    assert data.lineage is None and "has no owner stamp" in data.problems[0]
    empty = read_run_data(str(tmp_path / "nothing"), {"team_a"})
    assert empty.problems == [
        f"{tmp_path / 'nothing'}: empty or missing (nothing trained here yet?)"
    ]


def test_a_model_dir_outside_the_roots_is_not_read(model_dir, tmp_path):
    data = read_run_data(model_dir, {"mine"}, roots=[str(tmp_path / "elsewhere")])
    assert data.problems == [
        f"{model_dir} is outside [tfexp] model_dir_roots ({tmp_path / 'elsewhere'}): not shown"
    ]


def test_a_fifo_as_the_owner_stamp_refuses_the_dir_without_hanging(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    os.mkfifo(str(model_dir / OWNER_FILE))
    data = read(str(model_dir))
    assert "is a FIFO" in data.problems[0] and len(data.problems) == 1


def test_another_experiments_model_dir_nested_in_mine_is_not_read_as_mine(model_dir):
    nested = os.path.join(model_dir, "eval_b")
    write(nested, "results.jsonl", json.dumps({"global_step": 9, "metrics": {"loss": 0.2}}) + "\n")
    write(nested, OWNER_FILE, json.dumps({"experiment": "team_b"}))
    data = read(model_dir)
    assert "b" not in data.evaluations
    assert any(
        "eval_b is the model dir of the experiment 'team_b': not read" in p for p in data.problems
    )


def test_a_model_dir_inside_another_experiments_is_not_shown(tmp_path):
    outer = str(tmp_path / "outer")
    claim_model_dir(outer, "team_b")
    inner = os.path.join(outer, "inner")
    write(inner, OWNER_FILE, json.dumps({"experiment": "team_a"}))  # stamped before the outer check
    data = read_run_data(inner, {"team_a"})
    assert data.problems == [
        f"{inner} is inside {outer}, the model dir of the experiment 'team_b': not shown"
    ]


@pytest.mark.parametrize(
    "record",
    [
        {"global_step": 10**400, "metrics": {"loss": 1.0}},
        {"global_step": 3, "metrics": {"loss": 10**400}},
        {"global_step": 3, "metrics": {"loss": 1.0}, "duration_secs": 10**400},
    ],
    ids=["huge-step", "huge-metric", "huge-duration"],
)
def test_integers_too_large_for_a_float_are_problem_lines(model_dir, record):
    good = json.dumps({"global_step": 10, "metrics": {"loss": 0.1}})
    write(model_dir, "eval_c/results.jsonl", json.dumps(record) + "\n" + good + "\n")
    data = read(model_dir)
    assert 'data-step="10"' in page(data)
    assert any("results.jsonl: line 1" in p for p in data.problems), data.problems


def test_many_series_and_metrics_are_capped_on_the_page(model_dir):
    metrics = {f"m{i:05d}": float(i) for i in range(2000)}
    lines = [json.dumps({"global_step": s, "metrics": metrics}) for s in range(5)]
    write(model_dir, "eval_c/results.jsonl", "\n".join(lines) + "\n")
    data = read(model_dir)
    html = page(data)
    assert len(data.metric_names) == 2000
    assert html.count('class="chart"') == 30
    assert "2,000 metrics, the first 30 shown" in html
    assert len(html) < 500_000


def test_event_files_past_the_points_budget_are_not_read(model_dir, monkeypatch):
    import airflow_tfexp.plugins.run_data as run_data

    monkeypatch.setattr(run_data, "MAX_SCALAR_POINTS", 1500)
    write(model_dir, "events.out.tfevents.1.a", event_file(1000))
    write(model_dir, "events.out.tfevents.2.b", event_file(1000))
    write(model_dir, "events.out.tfevents.3.c", event_file(1000))
    data = read(model_dir)
    assert len(data.training["loss"]) == 1500
    problems = "\n".join(data.problems)
    assert "events.out.tfevents.2.b: read up to the page's 1,500 training points" in problems
    assert "events.out.tfevents.3.c: not read, the page reads at most 1,500" in problems


def test_a_fifo_or_huge_stamp_above_the_model_dir_neither_hangs_nor_fills_memory(tmp_path):
    team = tmp_path / "team"
    run = team / "run1"
    run.mkdir(parents=True)
    claim_model_dir(str(run), "mine")
    os.mkfifo(str(team / OWNER_FILE))
    data = read(str(run))
    assert "is not an owner stamp" in data.problems[0] and "FIFO" in data.problems[0]
    os.remove(str(team / OWNER_FILE))
    os.symlink("/dev/zero", str(team / OWNER_FILE))
    data = read(str(run))
    assert "is not an owner stamp" in data.problems[0]


def test_evaluation_records_and_dirs_past_the_budget_are_not_read(model_dir, monkeypatch):
    import airflow_tfexp.plugins.run_data as run_data

    monkeypatch.setattr(run_data, "MAX_RESULT_RECORDS", 150)
    monkeypatch.setattr(run_data, "MAX_EVALUATORS", 2)
    for name in ("a", "b", "c"):
        lines = [json.dumps({"global_step": s, "metrics": {"loss": 1.0}}) for s in range(100)]
        write(model_dir, f"eval_{name}/results.jsonl", "\n".join(lines) + "\n")
    data = read(model_dir)
    assert sorted(data.evaluations) == ["a", "b"]
    assert sum(len(r) for r in data.evaluations.values()) == 150
    problems = "\n".join(data.problems)
    assert "3 evaluation dirs: the first 2 read, eval_c, ... not read" in problems
    assert "line 51 and on not read, the page reads at most 150 evaluation records" in problems


def test_a_model_dir_with_a_nul_byte_is_a_problem_line():
    data = read_run_data("/tmp/x\x00y", {"mine"})
    assert "cannot be read" in data.problems[0]
