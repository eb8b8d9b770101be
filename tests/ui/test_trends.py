"""The trends page's parts without a running Airflow: which evaluation is a run's final one,
what each run's outcome is, reading a publish dir through the same checks as a model dir, and
the charts (dates on the x axis, outcomes marked, fixed colors). The page in a browser, with
three real retraining days: tests/ui/test_experiments_page.py."""

from __future__ import annotations

import datetime
import json
import os

from airflow_tfexp.experiment.storage.ownership import claim_model_dir
from airflow_tfexp.plugins.run_data import RunData
from airflow_tfexp.plugins.trends import (
    chosen_metrics,
    day_ticks,
    read_versions,
    trend_charts,
    trend_row,
)


def record(step, **metrics):
    return {"global_step": step, "metrics": {"global_step": step, **metrics}}


def run(day: int) -> dict:
    date = datetime.datetime(2026, 11, day, tzinfo=datetime.UTC).isoformat()
    return {"run_id": f"scheduled__{date}", "state": "success", "logical_date": date}


def test_the_final_evaluation_is_the_highest_step_over_every_evaluator():
    data = RunData(
        model_dir="/m",
        evaluations={
            "continuous": [record(0, loss=2.0), record(100, loss=0.5)],
            "final": [record(100, loss=0.4, accuracy=0.9), record(20, loss=1.0)],
            "zz": [record(50, loss=9.0, weird=float("nan"))],
        },
        blessing={"blessed": False, "reason": "worse"},
        lineage={"approval": {"decision": "rejected", "reason": "<b>no</b>" * 100}},
    )
    row = trend_row(run(1), [RunData(model_dir="/empty"), data])
    assert row["model_dir"] == "/m"  # the first dir that has an evaluation
    assert row["final"] == {"global_step": 100, "evaluator": "continuous", "metrics": {"loss": 0.5}}
    assert row["outcome"] == "rejected"
    assert row["approval"]["decision"] == "rejected"
    assert len(row["approval"]["reason"]) == 300  # bounded
    odd = RunData(model_dir="/o", evaluations={"e": [record(9, loss=0.5, accuracy=float("inf"))]})
    final = trend_row(run(1), [odd])["final"]
    assert final["metrics"] == {"loss": 0.5} and final["not_numbers"] == ["accuracy"]


def test_an_approval_section_that_is_no_decision_record_is_a_problem_not_a_row_entry():
    hostile = [
        {"decision": "<b>approved</b>", "reason": "looks fine"},
        {"decision": "approved", "reason": {"nested": [1]}, "responded_by": ["a", "a"]},
        ["approved"],
    ]
    for approval in hostile:
        data = RunData(
            model_dir="/m", evaluations={"e": [record(1, loss=1.0)]}, lineage={"approval": approval}
        )
        row = trend_row(run(1), [data])
        assert row["approval"] is None, approval
        assert any("/m: run.json: approval" in p for p in row["problems"]), row["problems"]
    good = {"decision": "timed_out", "reason": None, "responded_by": None}
    data = RunData(
        model_dir="/m", evaluations={"e": [record(1, loss=1.0)]}, lineage={"approval": good}
    )
    row = trend_row(run(1), [data])
    assert row["approval"] == {"decision": "timed_out", "reason": "", "responded_by": ""}
    assert row["problems"] == []


def test_outcomes_published_blessed_and_none():
    published = RunData(
        model_dir="/a",
        evaluations={"e": [record(1, loss=1.0)]},
        blessing={"blessed": True, "reason": "", "baseline_metrics": {"loss": 1.5}},
        lineage={"published": {"version": 3, "path": "/p/3"}},
    )
    row = trend_row(run(2), [published])
    assert (row["outcome"], row["published_version"]) == ("published", 3)
    assert row["published_model"] == {"loss": 1.5}
    blessed = RunData(model_dir="/b", blessing={"blessed": True, "reason": ""}, lineage={})
    assert trend_row(run(3), [blessed])["outcome"] == "blessed"  # e.g. a person rejected it
    plain = RunData(model_dir="/c", evaluations={"e": [record(1, loss=1.0)]})
    assert trend_row(run(4), [plain])["outcome"] == ""


def test_a_publish_dir_is_read_only_when_it_is_the_experiments_and_inside_the_roots(tmp_path):
    publish_dir = str(tmp_path / "published")
    claim_model_dir(publish_dir, "mine")
    for version in ("1", "2", "10"):
        os.makedirs(os.path.join(publish_dir, version))
    os.makedirs(os.path.join(publish_dir, "2.partial"))  # a copy still being written
    with open(os.path.join(publish_dir, "LATEST"), "w") as handle:
        json.dump({"version": 10, "metric": "loss", "value": 0.25, "run_id": "r"}, handle)
    found = read_versions(publish_dir, {"mine"}, 2**20, [])
    assert found["versions"] == [1, 2, 10]
    assert found["latest"]["version"] == 10 and found["latest"]["value"] == 0.25
    theirs = read_versions(publish_dir, {"someone_else"}, 2**20, [])
    assert theirs["versions"] == [] and "belongs to the experiment 'mine'" in theirs["problem"]
    outside = read_versions(publish_dir, {"mine"}, 2**20, [str(tmp_path / "elsewhere")])
    assert outside["versions"] == [] and "outside [tfexp] model_dir_roots" in outside["problem"]


def test_the_charts_put_dates_on_the_x_axis_and_mark_each_outcome_in_its_color():
    rows = []
    for day, loss, outcome in ((1, 0.5, "published"), (2, 0.7, "rejected"), (3, 0.4, "published")):
        row = trend_row(
            run(day), [RunData(model_dir="/m", evaluations={"e": [record(9, loss=loss)]})]
        )
        rows.append({**row, "outcome": outcome})
    (chart,) = trend_charts({"runs": rows}, ["loss"])
    assert chart.count('data-series="final evaluation"') == 3
    assert (
        chart.count('data-series="published"') == 2 and chart.count('data-series="rejected"') == 1
    )
    assert ">2026-11-02</text>" in chart and "logical date" in chart
    assert 'stroke="#d62728"' in chart  # rejected: red, whatever the series' order
    assert chart.count("<polyline") == 1  # the markers are points only


def test_day_ticks_and_chosen_metrics():
    day = 86400.0
    assert day_ticks([0.0, day / 2]) is None  # under two days: the chart labels hours
    assert day_ticks([0.0, 2 * day]) == [0.0, day, 2 * day, 3 * day]
    assert len(day_ticks([0.0, 365 * day])) <= 8
    assert chosen_metrics(["loss", "accuracy", "auc"], "auc,nope") == ["auc"]
    assert chosen_metrics(["loss", "accuracy"], "nope") == ["loss", "accuracy"]
    assert chosen_metrics(["a", "b", "c", "d", "e"], None) == ["a", "b", "c", "d"]


def test_odd_entries_in_a_publish_dir_are_not_versions(tmp_path):
    publish_dir = tmp_path / "published"
    claim_model_dir(str(publish_dir), "mine")
    for name in ("1", "²", "١٢", "3.partial"):
        (publish_dir / name).mkdir()
    (publish_dir / "7").symlink_to("/etc")  # a link is not a version, wherever it points
    (publish_dir / "8").write_text("a file")
    (publish_dir / "LATEST").write_text(json.dumps({"version": 10**400, "value": True}))
    found = read_versions(str(publish_dir), {"mine"}, 2**20, [])
    assert found["versions"] == [1]
    assert found["latest"]["version"] is None and found["latest"]["value"] is None
    (publish_dir / "LATEST").write_text(json.dumps({"version": True}))
    assert read_versions(str(publish_dir), {"mine"}, 2**20, [])["latest"]["version"] is None


def test_a_runs_row_is_bounded_whatever_its_files_say():
    data = RunData(
        model_dir="/m",
        evaluations={"e": [record(1, **{f"m{i}" * 50: float(i) for i in range(200)})]},
        blessing={"blessed": "yes", "baseline_metrics": {"loss": "0.1", "x": 10**400}},
        lineage={"published": {"version": "9" * 5_000_000, "path": "/p"}},
        problems=["p" * 10_000] * 100,
    )
    row = trend_row(run(5), [data])
    assert len(json.dumps(row)) < 30_000
    assert row["published_version"] is None  # not a whole number
    assert row["outcome"] == "published"  # run.json says so; the version is not shown
    assert row["published_model"] == {}
    assert len(row["final"]["metrics"]) == 50
    assert (
        trend_row(run(6), [RunData(model_dir="/m", blessing={"blessed": "yes"})])["outcome"]
        == "rejected"
    )  # only true blesses
