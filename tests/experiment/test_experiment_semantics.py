"""Experiment's contract, driven with a fake estimator and a fake clock (fast, no TensorFlow)."""

from __future__ import annotations

import json
import logging
import math

import pytest

from airflow_tfexp.experiment import (
    Experiment,
    FinalExporter,
    LatestExporter,
    RunConfig,
    TrainingHook,
)
from airflow_tfexp.experiment.evaluation.coordination import (
    read_completion_marker,
    write_completion_marker,
)
from airflow_tfexp.experiment.evaluation.results import read_results
from tests.experiment.fakes import (
    FakeClock,
    FakeEstimator,
    eval_input_fn,
    train_input_fn,
    write_checkpoint,
)


def make(tmp_path, clock=None, estimator=None, **kwargs):
    estimator = estimator or FakeEstimator(tmp_path / "model")
    experiment = Experiment(estimator, train_input_fn, eval_input_fn, **kwargs)
    experiment._clock = clock or FakeClock()
    return experiment


def worker_config(model_dir, task_id, task_type="worker"):
    cluster = {"chief": ["localhost:1"], "worker": [f"localhost:{10 + i}" for i in range(30)]}
    return RunConfig(
        model_dir=str(model_dir),
        tf_config=json.dumps({"cluster": cluster, "task": {"type": task_type, "index": task_id}}),
    )


# -- train ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("task_id", "expected_delay"), [(0, 0), (3, 15), (11, 55), (20, 60)])
def test_train_delays_worker_k_by_min_60_5k(tmp_path, task_id, expected_delay):
    estimator = FakeEstimator(tmp_path / "m", config=worker_config(tmp_path / "m", task_id))
    clock = FakeClock()
    experiment = make(tmp_path, clock=clock, estimator=estimator, train_steps=20)
    assert experiment.train() is estimator
    assert clock.sleeps == ([expected_delay] if expected_delay else [])
    assert estimator.train_calls[0]["max_steps"] == 20


def test_train_explicit_delay_wins(tmp_path):
    estimator = FakeEstimator(tmp_path / "m", config=worker_config(tmp_path / "m", 5))
    clock = FakeClock()
    make(tmp_path, clock=clock, estimator=estimator, train_steps=5).train(delay_secs=2)
    assert clock.sleeps == [2]


def test_delay_workers_by_global_step_waits_for_8000_log_k_plus_1(tmp_path, caplog):
    model_dir = tmp_path / "m"
    estimator = FakeEstimator(model_dir, config=worker_config(model_dir, 2))
    target = int(8000 * math.log(3))  # 8788
    progress = iter([1000, 5000, target])

    def chief_trains(clock, seconds):  # the chief saves checkpoints while worker 2 waits
        write_checkpoint(str(model_dir), next(progress))

    clock = FakeClock(on_sleep=chief_trains)
    experiment = make(
        tmp_path,
        clock=clock,
        estimator=estimator,
        train_steps=target + 10,
        delay_workers_by_global_step=True,
        check_interval_secs=7,
    )
    with caplog.at_level(logging.INFO):
        experiment.train()
    assert clock.sleeps == [7, 7, 7]
    assert f"Waiting for global step {target}" in caplog.text
    assert estimator.train_calls[0]["max_steps"] == target + 10


def test_train_writes_completion_marker_with_final_step(tmp_path):
    experiment = make(tmp_path, train_steps=35)
    experiment.train()
    marker = read_completion_marker(experiment.model_dir)
    assert marker["global_step"] == 35
    assert "train_steps=35 reached" in marker["reason"]


def test_completion_marker_when_input_runs_out_before_train_steps(tmp_path):
    estimator = FakeEstimator(tmp_path / "m", input_size=23)
    experiment = make(tmp_path, estimator=estimator, train_steps=100)
    experiment.train()
    marker = read_completion_marker(experiment.model_dir)
    assert marker["global_step"] == 23
    assert "before train_steps=100" in marker["reason"]


def test_non_chief_worker_writes_no_marker(tmp_path):
    estimator = FakeEstimator(tmp_path / "m", config=worker_config(tmp_path / "m", 1))
    make(tmp_path, estimator=estimator, train_steps=10).train(delay_secs=0)
    assert read_completion_marker(str(tmp_path / "m")) is None


# -- evaluate ------------------------------------------------------------------------------------
def test_evaluate_waits_eval_delay_and_records_result(tmp_path):
    clock = FakeClock()
    experiment = make(tmp_path, clock=clock, eval_delay_secs=120, eval_steps=7)
    write_checkpoint(experiment.model_dir, 40)
    result = experiment.evaluate(name="adhoc")
    assert clock.sleeps == [120]
    assert result == {"global_step": 40, "loss": 1 / 41}
    assert experiment.estimator.evaluate_calls[0]["steps"] == 7
    (record,) = read_results(experiment.model_dir, "adhoc")
    assert record["global_step"] == 40 and record["checkpoint_path"].endswith("ckpt-40")


def test_evaluate_without_checkpoint_names_the_model_dir(tmp_path):
    experiment = make(tmp_path, eval_delay_secs=0)
    with pytest.raises(ValueError, match="no complete checkpoint"):
        experiment.evaluate()


# -- continuous_eval -----------------------------------------------------------------------------
def trainer_saving(model_dir, steps, final_marker=True):
    """An on_sleep callback: each sleep, the 'trainer' saves the next checkpoint."""
    pending = list(steps)

    def save(clock, seconds):
        if pending:
            write_checkpoint(model_dir, pending.pop(0))
            if not pending and final_marker:
                write_completion_marker(model_dir, steps[-1], "test")

    return save


def test_continuous_eval_latest_only_skips_intermediate_checkpoints(tmp_path):
    model_dir = str(tmp_path / "model")
    write_checkpoint(model_dir, 10)
    write_checkpoint(model_dir, 20)
    clock = FakeClock(on_sleep=trainer_saving(model_dir, [30, 40]))
    experiment = make(tmp_path, clock=clock, eval_delay_secs=0, continuous_eval_throttle_secs=60)
    last = experiment.continuous_eval()
    assert [c["step"] for c in experiment.estimator.evaluate_calls] == [20, 30, 40]
    assert last["global_step"] == 40
    assert [r["global_step"] for r in read_results(model_dir, "continuous")] == [20, 30, 40]


def test_continuous_eval_every_checkpoint_evaluates_all_in_step_order(tmp_path):
    model_dir = str(tmp_path / "model")
    for step in (10, 20, 30):
        write_checkpoint(model_dir, step)
    clock = FakeClock(on_sleep=trainer_saving(model_dir, [40, 50]))
    experiment = make(tmp_path, clock=clock, eval_delay_secs=0)
    experiment.continuous_eval(every_checkpoint=True)
    assert [c["step"] for c in experiment.estimator.evaluate_calls] == [10, 20, 30, 40, 50]


def test_continuous_eval_throttles_the_rest_of_the_interval(tmp_path, caplog):
    model_dir = str(tmp_path / "model")
    write_checkpoint(model_dir, 10)
    clock = FakeClock(on_sleep=trainer_saving(model_dir, [20]))
    experiment = make(tmp_path, clock=clock, eval_delay_secs=0, continuous_eval_throttle_secs=60)

    def slow_evaluate(*args, **kwargs):  # each evaluation takes 25 s of (fake) time
        clock.now += 25
        return original(*args, **kwargs)

    original = experiment.estimator.evaluate
    experiment.estimator.evaluate = slow_evaluate
    with caplog.at_level(logging.INFO):
        experiment.continuous_eval()
    assert clock.sleeps == [35]  # 60 s throttle - 25 s spent evaluating
    assert "throttled for 35 s" in caplog.text
    assert "evaluated the final checkpoint (step 20" in caplog.text


def test_continuous_eval_logs_why_it_waits(tmp_path, caplog):
    model_dir = str(tmp_path / "model")
    saves = iter(
        [
            lambda: None,
            lambda: write_checkpoint(model_dir, 10),
            lambda: None,
            lambda: write_completion_marker(model_dir, 10, "done"),
        ]
    )
    clock = FakeClock(on_sleep=lambda c, s: next(saves)())
    experiment = make(tmp_path, clock=clock, eval_delay_secs=0, continuous_eval_throttle_secs=1)
    with caplog.at_level(logging.INFO):
        experiment.continuous_eval()
    assert "no checkpoint in" in caplog.text
    assert "no new checkpoint since step 10" in caplog.text


def test_only_once_survives_a_restart(tmp_path):
    model_dir = str(tmp_path / "model")
    for step in (10, 20):
        write_checkpoint(model_dir, step)
    first = make(
        tmp_path,
        clock=FakeClock(on_sleep=trainer_saving(model_dir, [30], final_marker=False)),
        eval_delay_secs=0,
        train_steps=40,
    )
    predicate_calls = []
    first.continuous_eval(
        every_checkpoint=True,
        continuous_eval_predicate_fn=lambda r: (
            predicate_calls.append(r) or len(predicate_calls) < 4
        ),
    )
    assert [c["step"] for c in first.estimator.evaluate_calls] == [10, 20, 30]

    # A retry of the evaluation task: a new process with a new Experiment on the same model dir.
    second = make(
        tmp_path,
        clock=FakeClock(on_sleep=trainer_saving(model_dir, [40])),
        eval_delay_secs=0,
        train_steps=40,
    )
    second.continuous_eval(every_checkpoint=True)
    assert [c["step"] for c in second.estimator.evaluate_calls] == [40]
    assert [r["global_step"] for r in read_results(model_dir, "continuous")] == [10, 20, 30, 40]


def test_evaluate_checkpoint_only_once_false_re_evaluates_latest(tmp_path):
    model_dir = str(tmp_path / "model")
    write_checkpoint(model_dir, 10)
    calls = []
    experiment = make(tmp_path, clock=FakeClock(), eval_delay_secs=0)
    experiment.continuous_eval(
        evaluate_checkpoint_only_once=False,
        continuous_eval_predicate_fn=lambda r: calls.append(r) or len(calls) < 3,
    )
    assert [c["step"] for c in experiment.estimator.evaluate_calls] == [10, 10]


def test_predicate_gets_none_first_and_can_stop_before_any_evaluation(tmp_path):
    write_checkpoint(str(tmp_path / "model"), 10)
    seen = []
    experiment = make(tmp_path, eval_delay_secs=0)
    assert (
        experiment.continuous_eval(continuous_eval_predicate_fn=lambda r: seen.append(r) or False)
        is None
    )
    assert seen == [None]
    assert experiment.estimator.evaluate_calls == []


def test_predicate_stops_after_a_result(tmp_path):
    model_dir = str(tmp_path / "model")
    write_checkpoint(model_dir, 10)
    clock = FakeClock(on_sleep=trainer_saving(model_dir, [20, 30, 40]))
    experiment = make(tmp_path, clock=clock, eval_delay_secs=0)
    last = experiment.continuous_eval(
        continuous_eval_predicate_fn=lambda r: r is None or r["global_step"] < 30
    )
    assert last["global_step"] == 30
    assert [c["step"] for c in experiment.estimator.evaluate_calls] == [10, 20, 30]


def test_continuous_eval_stops_at_train_steps_and_exports_final(tmp_path):
    model_dir = str(tmp_path / "model")
    write_checkpoint(model_dir, 50)
    final_flags = []

    class Recording(LatestExporter):
        def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
            final_flags.append((eval_result["global_step"], is_the_final_export))
            return super().export(
                estimator, export_path, checkpoint_path, eval_result, is_the_final_export
            )

    clock = FakeClock(on_sleep=trainer_saving(model_dir, [100], final_marker=False))
    experiment = make(
        tmp_path,
        clock=clock,
        eval_delay_secs=0,
        train_steps=100,
        export_strategies=Recording("latest"),
    )
    experiment.continuous_eval()
    assert final_flags == [(50, False), (100, True)]


def test_continuous_eval_on_train_data_uses_train_input_and_does_not_export(tmp_path):
    model_dir = str(tmp_path / "model")
    write_checkpoint(model_dir, 10)
    write_completion_marker(model_dir, 10, "done")
    experiment = make(tmp_path, eval_delay_secs=0, export_strategies=[LatestExporter("latest")])
    experiment.continuous_eval_on_train_data()
    (call,) = experiment.estimator.evaluate_calls
    assert call["input_fn"] is train_input_fn and call["name"] == "continuous_on_train_data"
    assert experiment.estimator.exports == []


# -- train_and_evaluate ------------------------------------------------------------------------
def test_train_and_evaluate_validates_every_min_eval_frequency_steps(tmp_path, caplog):
    experiment = make(
        tmp_path,
        train_steps=100,
        min_eval_frequency=25,
        export_strategies=[LatestExporter("latest")],
    )
    with caplog.at_level(logging.INFO):
        eval_result, export_results = experiment.train_and_evaluate()
    # Checkpoints every 10 steps; an evaluation needs >= 25 steps since the previous one.
    assert [c["step"] for c in experiment.estimator.evaluate_calls] == [30, 60, 90, 100]
    assert (
        "Skipping evaluation at step 40: 10 steps since the last evaluation at step 30"
        in caplog.text
    )
    assert eval_result["global_step"] == 100
    assert len(export_results) == 1 and export_results[0].endswith(tuple("0123456789"))
    assert read_completion_marker(experiment.model_dir)["global_step"] == 100


def test_train_and_evaluate_default_min_eval_frequency_evaluates_every_checkpoint(tmp_path):
    experiment = make(tmp_path, train_steps=30)
    assert experiment.min_eval_frequency == 1
    experiment.train_and_evaluate()
    # The final checkpoint's in-training result is reused, not evaluated twice.
    assert [c["step"] for c in experiment.estimator.evaluate_calls] == [10, 20, 30]


def test_train_and_evaluate_min_eval_frequency_zero_evaluates_only_at_end(tmp_path):
    experiment = make(tmp_path, train_steps=50, min_eval_frequency=0)
    experiment.train_and_evaluate()
    assert [c["step"] for c in experiment.estimator.evaluate_calls] == [50]


def test_checkpoint_and_export_exports_every_checkpoint_and_final_once(tmp_path):
    flags = []

    class Recording(FinalExporter):
        def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
            flags.append((eval_result["global_step"], is_the_final_export))
            return super().export(
                estimator, export_path, checkpoint_path, eval_result, is_the_final_export
            )

    experiment = make(
        tmp_path,
        train_steps=30,
        min_eval_frequency=0,
        checkpoint_and_export=True,
        export_strategies=[Recording("final")],
    )
    experiment.train_and_evaluate()
    assert flags == [(10, False), (20, False), (30, True)]
    assert len(experiment.estimator.exports) == 1  # FinalExporter wrote only the final model


def test_local_run_is_deprecated_and_uses_local_eval_frequency(tmp_path):
    with pytest.warns(FutureWarning, match="local_eval_frequency"):
        experiment = make(tmp_path, train_steps=40, local_eval_frequency=20)
    with pytest.warns(FutureWarning, match="local_run"):
        experiment.local_run()
    assert [c["step"] for c in experiment.estimator.evaluate_calls] == [20, 40]
    assert experiment.min_eval_frequency == 1  # restored afterwards


# -- continuous_train_and_eval and test ------------------------------------------------------
def test_continuous_train_and_eval_iterates_train_steps_per_iteration(tmp_path):
    experiment = make(
        tmp_path,
        train_steps=100,
        train_steps_per_iteration=30,
        export_strategies=[LatestExporter("latest", exports_to_keep=None)],
    )
    eval_result, export_results = experiment.continuous_train_and_eval()
    assert [c["max_steps"] for c in experiment.estimator.train_calls] == [30, 60, 90, 100]
    assert [c["step"] for c in experiment.estimator.evaluate_calls] == [30, 60, 90, 100]
    assert eval_result["global_step"] == 100 and len(experiment.estimator.exports) == 4
    assert read_completion_marker(experiment.model_dir)["global_step"] == 100


def test_continuous_train_and_eval_defaults_to_a_tenth_of_train_steps(tmp_path):
    experiment = make(tmp_path, train_steps=50)
    experiment.continuous_train_and_eval()
    assert [c["max_steps"] for c in experiment.estimator.train_calls] == [
        5 * i for i in range(1, 11)
    ]


def test_continuous_train_and_eval_predicate(tmp_path):
    seen = []
    experiment = make(tmp_path, train_steps=100, train_steps_per_iteration=20)
    eval_result, _ = experiment.continuous_train_and_eval(
        continuous_eval_predicate_fn=lambda r: seen.append(r) or r is None or r["global_step"] < 40
    )
    assert seen[0] is None
    assert eval_result["global_step"] == 40
    assert [c["max_steps"] for c in experiment.estimator.train_calls] == [20, 40]


def test_test_trains_one_step_evaluates_one_step_and_exports(tmp_path):
    experiment = make(tmp_path, export_strategies=[LatestExporter("latest")])
    result = experiment.test()
    assert experiment.estimator.train_calls[0]["steps"] == 1
    (call,) = experiment.estimator.evaluate_calls
    assert call == {"step": 1, "steps": 1, "name": "one_pass", "input_fn": eval_input_fn}
    assert result["global_step"] == 1 and len(experiment.estimator.exports) == 1


# -- hooks and strategies ----------------------------------------------------------------------
def test_extend_train_hooks_and_a_hook_can_stop_training(tmp_path):
    class StopAt(TrainingHook):
        def after_step(self, step, logs):
            return step >= 17

    experiment = make(tmp_path, train_steps=100)
    experiment.extend_train_hooks([StopAt()])
    experiment.train(delay_secs=0)
    assert read_completion_marker(experiment.model_dir)["global_step"] == 17
    with pytest.raises(ValueError, match="`additional_hooks`.*a list of hooks"):
        experiment.extend_train_hooks(StopAt())  # one hook, not a list


def test_reset_export_strategies_returns_the_old_ones(tmp_path):
    latest = LatestExporter("latest")
    experiment = make(tmp_path, export_strategies=latest)
    assert experiment.reset_export_strategies([FinalExporter("final")]) == [latest]
    assert [s.name for s in experiment.export_strategies] == ["final"]
    assert [s.name for s in experiment.reset_export_strategies()] == ["final"]
    assert experiment.export_strategies == []


# -- bad input ---------------------------------------------------------------------------------
class NoEvaluate:
    model_dir = "/tmp/x"

    def train(self, **kwargs):
        return self


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"export_strategies": ["latest"]},
            r"Invalid value in `export_strategies`. Received: 'latest'",
        ),
        ({"export_strategies": 3}, r"Invalid value for `export_strategies`. Received: 3"),
        ({"export_strategies": [LatestExporter("a"), FinalExporter("a")]}, r"repeated: \['a'\]"),
        (
            {"train_steps_per_iteration": "10"},
            r"`train_steps_per_iteration`. Received: '10'. Expected an int",
        ),
        ({"train_steps_per_iteration": 2.5}, r"`train_steps_per_iteration`. Received: 2.5"),
        ({"train_steps": -1}, r"`train_steps`. Received: -1"),
        ({"eval_steps": 0}, r"`eval_steps`. Received: 0"),
        ({"eval_delay_secs": -3}, r"`eval_delay_secs`. Received: -3"),
        ({"continuous_eval_throttle_secs": -1}, r"`continuous_eval_throttle_secs`. Received: -1"),
        ({"min_eval_frequency": -5}, r"`min_eval_frequency`. Received: -5"),
        ({"check_interval_secs": -1}, r"`check_interval_secs`. Received: -1"),
        ({"train_monitors": object()}, r"Invalid value for `train_monitors`.*a list of hooks"),
        ({"saving_listeners": "x"}, r"Invalid value for `saving_listeners`.*a list of hooks"),
        ({"eval_metrics": {"auc": abs}}, r"`eval_metrics` is not supported by FakeEstimator"),
    ],
)
def test_constructor_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(tmp_path, **kwargs)


def test_estimator_that_cannot_evaluate_is_rejected():
    with pytest.raises(
        ValueError, match=r"must implement train\(\) and evaluate\(\).*no callable evaluate"
    ):
        Experiment(NoEvaluate(), train_input_fn, eval_input_fn)


@pytest.mark.parametrize("method", ["continuous_eval", "continuous_train_and_eval"])
def test_predicate_must_be_callable(tmp_path, method):
    experiment = make(tmp_path, eval_delay_secs=0)
    with pytest.raises(ValueError, match=r"`continuous_eval_predicate_fn`. Received: 'yes'"):
        getattr(experiment, method)(continuous_eval_predicate_fn="yes")


@pytest.mark.parametrize(
    ("method", "kwargs", "name"),
    [
        ("train", {"delay_secs": -1}, "delay_secs"),
        ("evaluate", {"delay_secs": -2}, "delay_secs"),
        ("continuous_eval", {"throttle_delay_secs": -4}, "throttle_delay_secs"),
    ],
)
def test_negative_delays_are_rejected(tmp_path, method, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`. Received: -"):
        getattr(make(tmp_path), method)(**kwargs)


def test_evaluate_checkpoint_evaluates_a_given_checkpoint_and_refuses_incomplete_ones(tmp_path):
    from airflow_tfexp.experiment import CheckpointError

    experiment = make(tmp_path)
    write_checkpoint(experiment.model_dir, 10)
    write_checkpoint(experiment.model_dir, 20)
    assert (
        experiment.evaluate_checkpoint(f"{experiment.model_dir}/ckpt-10", name="x")["global_step"]
        == 10
    )
    (tmp_path / "model" / "ckpt-20.index").unlink()  # being written (or deleted) right now
    with pytest.raises(CheckpointError, match="ckpt-20 is missing or incomplete"):
        experiment.evaluate_checkpoint(f"{experiment.model_dir}/ckpt-20")
    assert [r["global_step"] for r in read_results(experiment.model_dir, "x")] == [10]


def test_continuous_eval_pass_evaluates_what_is_new_and_says_when_it_is_over(tmp_path):
    model_dir = str(tmp_path / "model")
    write_checkpoint(model_dir, 10)
    write_checkpoint(model_dir, 20)
    experiment = make(tmp_path, train_steps=30)
    first = experiment.continuous_eval_pass(every_checkpoint=True, evaluator_id="task-1")
    assert [r["global_step"] for r in first.results] == [10, 20]
    assert (first.watermark, first.finished) == (20, None)
    # A later pass (another process after a deferral): nothing new, then the final step.
    assert make(tmp_path).continuous_eval_pass(first=False, evaluator_id="task-1").results == []
    write_checkpoint(model_dir, 30)
    last = make(tmp_path, train_steps=30).continuous_eval_pass(first=False, evaluator_id="task-1")
    assert [r["global_step"] for r in last.results] == [30]
    assert "train_steps=30" in last.finished
    # one registration across the passes (the deferred task's id), withdrawn at the end
    assert list((tmp_path / "model" / "eval_continuous").glob("evaluator*.json")) == []


def test_the_constructor_predicate_is_continuous_evals_default(tmp_path):
    write_checkpoint(str(tmp_path / "model"), 10)
    seen = []
    experiment = make(
        tmp_path, eval_delay_secs=0, continuous_eval_predicate_fn=lambda r: seen.append(r) or False
    )
    assert experiment.continuous_eval() is None and seen == [None]
    outcome = experiment.continuous_eval_pass()
    assert outcome.finished == "the predicate said stop" and outcome.results == []
    with pytest.raises(ValueError, match="`continuous_eval_predicate_fn`"):
        make(tmp_path, continuous_eval_predicate_fn=3)


def test_export_uses_the_recorded_evaluation_or_evaluates_first(tmp_path):
    from airflow_tfexp.experiment import BestExporter

    model_dir = str(tmp_path / "model")
    write_checkpoint(model_dir, 10)
    write_checkpoint(model_dir, 20)
    experiment = make(tmp_path, eval_delay_secs=0, export_strategies=[BestExporter("best")])
    experiment.evaluate(name="holdout")  # records step 20
    (path,) = experiment.export()
    assert path and len(experiment.estimator.evaluate_calls) == 1  # reused, not re-evaluated
    (path,) = experiment.export(checkpoint_path=f"{model_dir}/ckpt-10")
    assert path is None  # loss at step 10 is worse than the best (step 20)
    assert [c["name"] for c in experiment.estimator.evaluate_calls] == ["holdout", "export"]
