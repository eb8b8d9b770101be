"""The approval gate without a running Airflow: where the factory puts it, what it checks at
parse time, what the person is shown (and that a hostile model dir cannot write markup into
it), and what it records. Answering it through the REST API: tests/e2e/test_edge_executor.py."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from airflow_tfexp.dag_factory import ExperimentConfigError, build_experiment_dag
from airflow_tfexp.experiment.retraining.blessing import write_blessing
from airflow_tfexp.operators import ApproveModelOperator
from airflow_tfexp.operators._approval_text import approval_body
from airflow_tfexp.operators.approval import answer_record
from tests.airflow.lineage_events import check_tfexp_facets
from tests.airflow.test_factory_dags import tiny_config
from tests.airflow.test_lineage import as_event


def approval_config(tmp_path, **blessing):
    return tiny_config(
        "local",
        str(tmp_path / "model"),
        dag_id="tfexp_test_approval",
        publish_dir=str(tmp_path / "published"),
        params={"learning_rate": {"default": 0.1, "type": "number"}},
        blessing={"approval": "required", **blessing},
    )


def test_the_factory_puts_the_approval_between_bless_and_publish(tmp_path):
    dag = build_experiment_dag(approval_config(tmp_path, approval_timeout="2h", approvers=["ana"]))
    assert dag.get_task("approve").upstream_task_ids == {"bless"}
    assert dag.get_task("publish").upstream_task_ids == {"approve"}
    approve = dag.get_task("approve")
    assert approve.response_timeout == datetime.timedelta(hours=2)
    assert approve.defaults == ["Reject"]  # no answer in time: not published
    assert approve.assigned_users == [{"id": "ana", "name": "ana"}]
    assert list(approve.params) == ["reason"]  # the DAG's params are not the person's form
    # the steps that build no Experiment report their DAG's experiment to OpenLineage
    hashes = {
        dag.get_task(t).step_lineage(None).config_hash for t in ("bless", "approve", "publish")
    }
    assert len(hashes) == 1
    without = build_experiment_dag({**approval_config(tmp_path), "blessing": {}})
    assert "approve" not in without.task_ids
    assert without.get_task("publish").upstream_task_ids == {"bless"}


@pytest.mark.parametrize(
    ("blessing", "message"),
    [
        ({"approval": "maybe"}, "blessing.approval"),
        ({"approval_timeout": "soon"}, "blessing.approval_timeout"),
        ({"approval_timeout": -5}, "blessing.approval_timeout"),
        ({"approvers": []}, "blessing.approvers"),
        ({"approvers": "ana"}, "blessing.approvers"),
        ({"approval_timeout": "0s"}, "blessing.approval_timeout"),
        ({"approval_timeout": None}, "blessing.approval_timeout"),
        ({"approval_timeout": 1e30}, "blessing.approval_timeout"),
        ({"approval_timeout": 0.0001}, "at least 1 s"),
        ({"approvers": ["ana", "ana"]}, "lists a user id twice"),
        ({"approvers": ["ana\nlee"]}, "control character"),
        ({"approvers": ["{{ params.who }}"]}, "approvers are fixed in the DAG file"),
        # settings of a gate that is not there: a forgotten `approval: required`
        ({"approval": "none", "approvers": ["ana"]}, "set approval: required"),
        ({"approval": "none", "approval_timeout": "2h"}, "approval_timeout set but approval"),
    ],
)
def test_a_bad_approval_setting_fails_at_parse_time(tmp_path, blessing, message):
    with pytest.raises(ExperimentConfigError, match=message):
        build_experiment_dag(approval_config(tmp_path, **blessing))


def test_a_bad_timeout_is_named_once():
    with pytest.raises(ExperimentConfigError) as raised:
        build_experiment_dag(approval_config(Path("/tmp/unused"), approval_timeout="0s"))
    assert str(raised.value).count("(got '0s')") == 1, raised.value


def test_the_default_timeout_is_a_day(tmp_path):
    dag = build_experiment_dag(approval_config(tmp_path))  # no approval_timeout given
    assert dag.get_task("approve").response_timeout == datetime.timedelta(days=1)


def test_bad_operator_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="`response_timeout`"):
        ApproveModelOperator(task_id="a", model_dir="/m", response_timeout=-1)
    for approvers in ("ana", [], [" "], [1]):  # an empty list would let anyone answer
        with pytest.raises(ValueError, match="`approvers`"):
            ApproveModelOperator(task_id="a", model_dir="/m", approvers=approvers)
    with pytest.raises(ValueError, match="`response_timeout`"):
        ApproveModelOperator(task_id="a", model_dir="/m", response_timeout=1e30)
    for timeout in (10**12, datetime.timedelta(days=367), 0.5, "1d"):  # the factory's bounds
        with pytest.raises(ValueError, match="`response_timeout`. Received: "):
            ApproveModelOperator(task_id="a", model_dir="/m", response_timeout=timeout)
    for timeout in (float("inf"), float("nan")):  # the error shows the value given
        with pytest.raises(ValueError, match=f"Received: {timeout}"):
            ApproveModelOperator(task_id="a", model_dir="/m", response_timeout=timeout)
    for approvers in (["ana", "ana"], ["{{ dag_run.conf.who }}"]):
        with pytest.raises(ValueError, match="`approvers`"):
            ApproveModelOperator(task_id="a", model_dir="/m", approvers=approvers)
    with pytest.raises(ValueError, match="not supported"):
        ApproveModelOperator(task_id="a", model_dir="s3://b/m")


@pytest.mark.parametrize("blessed", [False, "yes", 1, None])
def test_a_candidate_that_was_not_blessed_is_skipped_without_asking(tmp_path, blessed):
    """Only `"blessed": true` blesses: a hand-edited "yes" neither asks nor publishes."""
    from airflow.sdk.exceptions import AirflowSkipException

    from airflow_tfexp.operators import PublishOperator

    model_dir = str(tmp_path / "model")
    write_blessing(model_dir, {"blessed": blessed, "reason": "worse than the baseline"})
    task = ApproveModelOperator(task_id="approve", model_dir=model_dir)
    with pytest.raises(AirflowSkipException, match="not blessed \\(worse than the baseline\\)"):
        task.execute({"params": {}})
    publish = PublishOperator(
        task_id="publish", model_dir=model_dir, publish_dir=str(tmp_path / "p"), outlets=[]
    )
    with pytest.raises(AirflowSkipException, match="not blessed"):
        publish.execute({"dag_run": None})


def test_a_blessing_file_that_is_not_a_record_is_a_clear_error(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "blessing.json").write_text("[1, 2]")
    task = ApproveModelOperator(task_id="approve", model_dir=str(model_dir))
    with pytest.raises(ValueError, match="blessing.json is not a blessing record"):
        task.execute({"params": {}})


def test_answer_fields_the_form_does_not_have_are_ignored_not_fatal():
    task = ApproveModelOperator(task_id="approve", model_dir="/m")
    answer = task.form_answer({"reason": "x" * 5000, "publish_dir": "/etc"})
    assert answer == {"reason": "x" * 2000}
    assert task.form_answer(None) == {}
    assert task.form_answer({"reason": None}) == {"reason": ""}


def test_the_person_sees_both_sides_and_a_hostile_model_dir_writes_no_markup():
    blessing = {
        "candidate_export": "/m/export/final/1700000000",
        "metric": "loss",
        "reason": "candidate loss=0.1 is lower than the baseline's 0.2 <b>now</b>",
        "candidate_metrics": {"loss": 0.1, "accuracy": 0.97, "](javascript:alert(1))": 1.0},
        "baseline_metrics": {"loss": 0.2, "accuracy": float("nan")},
        "baseline_version": 3,
    }
    body = approval_body(blessing, "/p", "/tfexp/dags/d/runs/r", datetime.timedelta(hours=1))
    assert "| loss | 0.1 | 0.2 |" in body
    assert "| accuracy | 0.97 | - |" in body  # NaN is not a number to compare
    assert "baseline (version 3)" in body
    assert "](javascript" not in body and "<b>" not in body
    assert "\\<b\\>now\\</b\\>" in body  # the reason's text is kept, as text
    assert "[The run's Experiments page](/tfexp/dags/d/runs/r)" in body
    assert "no answer within 1h is a Reject" in body
    # whatever the file holds: lists, huge integers, strings as numbers
    hostile = {
        "candidate_metrics": [1, 2],
        "baseline_metrics": {"loss": 10**400, "auc": "0.9"},
        "candidate_export": "`/x`\n# title",
        "metric": None,
        "reason": "_y_ & *z*",
    }
    odd = approval_body(hostile, None, "/r", None)
    assert "| loss | - | - |" in odd and "| auc | - | - |" in odd
    assert "\\_y\\_ \\& \\*z\\*" in odd and "# title" in odd.split("\n")[0]
    assert odd.count("`") == 6  # three code spans; the path's own backticks are gone
    names = {f"m{i}": i for i in range(80)}
    assert "30 more metrics on the run page" in approval_body(
        {"candidate_metrics": names}, "/p", "/r", None
    )


def test_an_approval_by_someone_outside_the_approvers_is_a_rejection():
    """Airflow's API refuses such an answer; where it is acted on, it is checked again."""
    task = ApproveModelOperator(task_id="approve", model_dir="/m", approvers=["ana"])
    answer = {"chosen_options": ["Approve"], "params_input": {"reason": "trust me"}}
    mallory = task.from_an_approver({**answer, "responded_by_user": {"id": "mallory"}})
    assert mallory["chosen_options"] == ["Reject"]
    assert mallory["params_input"]["reason"] == (
        "answered by 'mallory', who is not among the approvers"
    )
    ana = {**answer, "responded_by_user": {"id": "ana", "name": "Ana"}}
    assert task.from_an_approver(ana) == ana
    anyone = ApproveModelOperator(task_id="approve", model_dir="/m")  # no approvers: the DAG's
    assert anyone.from_an_approver({**answer, "responded_by_user": {"id": "bob"}})[
        "chosen_options"
    ] == ["Approve"]


def test_the_decision_goes_to_openlineage_with_the_reason():
    record = answer_record(
        {
            "chosen_options": ["Reject"],
            "params_input": {"reason": "the eval set changed"},
            "responded_at": datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC),
            "responded_by_user": {"id": "7", "name": "ana"},
        },
        {"candidate_export": "/m/export/final/1"},
        datetime.timedelta(hours=1),
    )
    assert record["decision"] == "rejected" and record["responded_by"] == "ana"
    assert record["responded_by_id"] == "7"  # names need not be unique; ids are
    assert record["responded_at"] == "2026-12-01T00:00:00+00:00"
    timed_out = answer_record(
        {"chosen_options": ["Reject"], "responded_by_user": None, "timedout": True},
        {},
        datetime.timedelta(hours=1),
    )
    assert timed_out["decision"] == "timed_out"
    assert timed_out["reason"] == "no answer within 1h"
    assert timed_out["responded_by"] is None and timed_out["responded_by_id"] is None
    task = ApproveModelOperator(task_id="approve", model_dir="/m")
    task.lineage_result = record
    lineage = task.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", "/m/export/final/1")]
    event = as_event(lineage)
    check_tfexp_facets(event)
    assert event["run"]["facets"]["tfexp_approval"]["reason"] == "the eval set changed"
    assert event["run"]["facets"]["tfexp_approval"]["decision"] == "rejected"
