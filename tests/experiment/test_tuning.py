"""tune(), the study spec and the pruning hook, on the fake estimator (no TensorFlow)."""

from __future__ import annotations

import re

import pytest

from airflow_tfexp.experiment import Experiment, FinalExporter, PruningHook, StudySpec, tune
from airflow_tfexp.experiment.evaluation.results import record_result
from airflow_tfexp.experiment.export.export_dirs import list_exports
from airflow_tfexp.experiment.hooks import TrainingContext, TrainingHook
from airflow_tfexp.experiment.storage.fs import join
from airflow_tfexp.experiment.tuning.study import open_study
from airflow_tfexp.experiment.tuning.trials import (
    Trial,
    ask_trials,
    complete_trial,
    suggest_trials,
)
from tests.experiment.fakes import FakeEstimator, eval_input_fn, train_input_fn

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def study(**extra) -> dict:
    return {"name": "sweep", "search_space": SPACE, "sampler": "random", "seed": 5, **extra}


class CrashOnce(TrainingHook):
    """Interrupts training at `step` the first time (a worker stopped mid-trial: Ctrl-C,
    SIGTERM), never after."""

    crashed: set[str] = set()

    def __init__(self, step: int) -> None:
        self.step = step
        self.model_dir = ""

    def begin(self, context: TrainingContext) -> None:
        self.model_dir = context.model_dir

    def after_step(self, step, logs):
        if step == self.step and self.model_dir not in CrashOnce.crashed:
            CrashOnce.crashed.add(self.model_dir)
            raise KeyboardInterrupt(f"killed at step {step}")


def make_experiment_fn(estimators: dict, crash_trial: int | None = None):
    def experiment_fn(run_config, params, trial):
        x = params["x"]
        estimator = FakeEstimator(
            run_config.model_dir,
            config=run_config,
            save_every=10,
            loss_fn=lambda s: abs(x - 0.3) + 10.0 / (1 + s),
        )
        estimators.setdefault(trial.number, []).append(estimator)
        hooks = [CrashOnce(25)] if trial.number == crash_trial else []
        return Experiment(
            estimator,
            train_input_fn,
            eval_input_fn,
            train_steps=50,
            eval_steps=None,
            eval_delay_secs=0,
            train_monitors=hooks,
            export_strategies=[FinalExporter("final")],
        )

    return experiment_fn


def test_tune_runs_the_trials_prunes_the_poor_ones_and_exports_only_the_best(tmp_path):
    model_dir, estimators = str(tmp_path / "sweep"), {}
    spec = study(pruner={"type": "median", "n_startup_trials": 2})
    out = tune(make_experiment_fn(estimators), spec, 10, model_dir=model_dir)
    rows = out["trials"]
    assert [r["number"] for r in rows] == list(range(10))
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned and all(r["pruned_at_step"] == 10 for r in pruned)
    for row in pruned:  # stopped right after the evaluation that pruned it
        assert estimators[row["number"]][0].train_calls[0]["max_steps"] == 50
        assert max(e["step"] for e in estimators[row["number"]][0].evaluate_calls) <= 11
    complete = [r for r in rows if r["state"] == "complete"]
    best = min(complete, key=lambda r: r["value"])
    assert out["best"]["number"] == best["number"]
    assert best["value"] == pytest.approx(abs(best["params"]["x"] - 0.3) + 10.0 / 51)
    assert best["objective_step"] == 50
    exported = [r["number"] for r in rows if list_exports(join(r["model_dir"], "export", "final"))]
    assert exported == [best["number"]] and out["export_paths"][0].startswith(best["model_dir"])
    # again: the study is complete, nothing is trained or told twice
    again = tune(make_experiment_fn(estimators), spec, 10, model_dir=model_dir)
    assert [r["value"] for r in again["trials"]] == [r["value"] for r in rows]
    assert all(len(v) == 1 for k, v in estimators.items() if k != best["number"])


def test_a_trial_killed_mid_training_resumes_from_its_checkpoint_and_is_told_once(tmp_path):
    model_dir, estimators = str(tmp_path / "sweep"), {}
    spec = study(pruner="none")
    with pytest.raises(KeyboardInterrupt, match="killed at step 25"):
        tune(make_experiment_fn(estimators, crash_trial=1), spec, 3, model_dir=model_dir)
    studied = open_study(StudySpec.from_value(spec), model_dir)
    assert [t.state.name for t in studied.get_trials()] == ["COMPLETE", "RUNNING"]
    out = tune(make_experiment_fn(estimators, crash_trial=1), spec, 3, model_dir=model_dir)
    assert [r["state"] for r in out["trials"]] == ["complete"] * 3
    retry = estimators[1][1]  # the second build of trial 1: it started at its checkpoint
    assert len(estimators[1]) == 2 and retry.evaluate_calls[0]["step"] == 30
    assert len([t for t in studied.get_trials() if t.number == 1]) == 1
    assert out["trials"][1]["objective_step"] == 50


def test_the_pruning_hook_reports_a_separate_evaluators_results(tmp_path):
    """Records written by another process (here: straight into the results file) count."""
    model_dir = str(tmp_path / "sweep")
    spec = StudySpec.from_value(study(objective={"metric": "loss", "eval_name": "continuous"}))
    opened = open_study(spec, model_dir)
    (trial,) = ask_trials(opened, spec, model_dir, 1, total=1, wave="w")
    hook = PruningHook(opened, spec, trial.number)
    hook.begin(TrainingContext(trial.model_dir, 0, 100))
    assert hook.after_step(1, {}) is False  # no results yet
    for step, loss in ((10, 0.9), (20, 0.5)):
        record_result(trial.model_dir, "continuous", {"loss": loss, "global_step": step}, None, 0.1)
    hook.after_step(2, {})
    (frozen,) = opened.get_trials()
    assert frozen.intermediate_values == {10: 0.9, 20: 0.5}


def test_a_trial_that_never_finished_training_is_told_failed_and_only_once(tmp_path):
    model_dir = str(tmp_path / "sweep")
    spec = StudySpec.from_value(study())
    opened = open_study(spec, model_dir)
    (trial,) = ask_trials(opened, spec, model_dir, 1, total=1, wave="w")
    record_result(trial.model_dir, None, {"loss": 0.4, "global_step": 10}, None, 0.1)
    row = complete_trial(opened, spec, trial)  # results but no completion marker: it failed
    assert row["state"] == "fail" and row["value"] is None
    assert complete_trial(opened, spec, trial) == row  # idempotent


def test_a_wave_asked_again_gets_its_own_trials_and_the_study_never_exceeds_trials(tmp_path):
    model_dir = str(tmp_path / "sweep")
    spec = StudySpec.from_value(study())
    first = suggest_trials(spec, model_dir, 4, total=6, wave="run-1")
    assert [t.number for t in first] == [0, 1, 2, 3]
    assert suggest_trials(spec, model_dir, 4, total=6, wave="run-1") == first  # a retry
    assert [t.number for t in suggest_trials(spec, model_dir, 4, total=6, wave="run-2")] == [4, 5]
    assert suggest_trials(spec, model_dir, 4, total=6, wave="run-3") == []
    assert all(t.model_dir == join(model_dir, "trials", str(t.number)) for t in first)


def test_the_grid_sampler_visits_each_point_once(tmp_path):
    model_dir = str(tmp_path / "sweep")
    spec = StudySpec.from_value(
        {
            "name": "grid",
            "sampler": "grid",
            "search_space": {
                "units": {"type": "int", "low": 8, "high": 32, "step": 8},
                "act": {"type": "categorical", "choices": ["relu", "tanh"]},
            },
        }
    )
    assert spec.max_trials() == 8
    trials = suggest_trials(spec, model_dir, 20, total=20, wave="w")
    points = sorted((t.params["units"], t.params["act"]) for t in trials)
    assert points == sorted((u, a) for u in (8, 16, 24, 32) for a in ("relu", "tanh"))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"lr": {"type": "float", "low": 0, "high": 1, "log": True}},
            "search_space.lr.low: must be > 0 with log: true",
        ),
        ({"lr": {"type": "float", "low": 1, "high": 0}}, "search_space.lr.high: must be >= low"),
        ({"lr": {"type": "flaot", "low": 0, "high": 1}}, "search_space.lr.type: expected one of"),
        ({"lr": {"type": "float", "low": 0, "hi": 1}}, "search_space.lr: unknown keys ['hi']"),
        ({"u": {"type": "int", "low": 1.5, "high": 4}}, "search_space.u.low: expected an int"),
        (
            {"a": {"type": "categorical", "choices": []}},
            "search_space.a.choices: expected a non-empty list",
        ),
        ({"tfexp_spec": {"type": "int", "low": 1, "high": 2}}, "provider's own"),
        ({"a": {"type": "categorical", "choices": [1, True]}}, "must be distinct values"),
        (
            {"a": {"type": "categorical", "choices": [0.5, float("nan")]}},
            "choices[1]: expected a finite",
        ),
        (
            {"lr": {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}},
            "log and step",
        ),
    ],
)
def test_a_bad_search_space_names_the_field(space, message):
    with pytest.raises(ValueError) as err:
        StudySpec.from_value({"name": "s", "search_space": space})
    assert message in str(err.value)


def test_a_bad_sampler_pruner_or_storage_names_the_field():
    for extra, message in (
        ({"sampler": "cmaes"}, "study.sampler: expected one of ['grid', 'random', 'tpe']"),
        ({"pruner": {"type": "median", "warmup": 3}}, "unknown options ['warmup'] for median"),
        ({"pruner": {"type": "median", "n_startup_trials": -1}}, "study.pruner.n_startup_trials"),
        (
            {"pruner": {"type": "successive_halving", "reduction_factor": 1}},
            "study.pruner.reduction_factor: expected an int >= 2 (got 1)",
        ),
        ({"storage": "mongodb://db/studies"}, "a SQLAlchemy URL of a database it knows"),
        ({"storage": "/tmp/study.db"}, 'study.storage: expected "journal" or "sqlite"'),
        ({"objective": {"metric": "loss", "mode": "maximum"}}, "study.objective.mode"),
        ({"sampler": "grid"}, "the grid sampler needs a step"),
    ):
        with pytest.raises(ValueError) as err:
            StudySpec.from_value(study(**extra))
        assert message in str(err.value), (extra, str(err.value))


def test_a_gcs_sweep_keeps_its_study_in_a_database_and_a_study_stays_with_its_model_dir(tmp_path):
    spec = StudySpec.from_value(study())
    with pytest.raises(ValueError, match="on gs://, where a study file cannot be shared"):
        open_study(spec, "gs://bucket/sweep")
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    open_study(spec, str(tmp_path / "a"), url)
    with pytest.raises(ValueError, match=r"is the sweep of the model dir .*/a, not .*/b"):
        open_study(spec, str(tmp_path / "b"), url)


def test_a_trial_from_xcom_is_checked_and_its_model_dir_recomputed(tmp_path):
    spec = StudySpec.from_value(study())
    trial = Trial.from_value({"number": 3, "params": {"x": 0.5}, "model_dir": "/etc"}, spec, "/m")
    assert trial.model_dir == "/m/trials/3"
    for bad in ({"number": -1, "params": {}}, {"number": True}, {"number": 1, "params": {"y": 1}}):
        with pytest.raises(ValueError, match="trial"):
            Trial.from_value(bad, spec, "/m")


def test_the_command_line_runs_a_sweep_in_a_container(tmp_path):
    import json
    import subprocess
    import sys

    model_dir = str(tmp_path / "sweep")
    args = {"study": study(pruner="none"), "trials": 3}
    command = [
        sys.executable,
        "-m",
        "airflow_tfexp.experiment",
        "--experiment-fn",
        "tests.airflow.sweep_experiment:experiment_fn",
        "--model-dir",
        model_dir,
        "--schedule",
        "tune",
        "--schedule-args",
        json.dumps(args),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["state"] for r in summary["trials"]] == ["complete"] * 3
    assert summary["best"]["number"] == min(summary["trials"], key=lambda r: r["value"])["number"]
    bad = subprocess.run(
        command[:-1] + [json.dumps({"study": args["study"], "trails": 3})],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "unknown ['trails'], missing ['trials']" in bad.stderr


def test_trials_left_running_by_an_ended_wave_are_told_from_their_records(tmp_path):
    from airflow_tfexp.experiment.evaluation.coordination import write_completion_marker
    from airflow_tfexp.experiment.tuning.trials import close_stale_trials

    model_dir = str(tmp_path / "sweep")
    spec = StudySpec.from_value(study())
    opened = open_study(spec, model_dir)
    trained, unfinished = ask_trials(opened, spec, model_dir, 2, total=4, wave="run-1")
    record_result(trained.model_dir, None, {"loss": 0.2, "global_step": 30}, None, 0.1)
    write_completion_marker(trained.model_dir, 30, "train_steps=30 reached")
    record_result(unfinished.model_dir, None, {"loss": 0.9, "global_step": 10}, None, 0.1)
    (current,) = ask_trials(opened, spec, model_dir, 1, total=4, wave="run-2")
    rows = close_stale_trials(opened, spec, model_dir, "run-2")
    assert [(r["number"], r["state"], r["value"]) for r in rows] == [
        (0, "complete", 0.2),
        (1, "fail", None),
    ]
    assert [t.state.name for t in opened.get_trials()] == ["COMPLETE", "FAIL", "RUNNING"]


def test_an_objective_the_evaluations_lack_stops_the_sweep_saying_which_metrics_there_are(
    tmp_path,
):
    from airflow_tfexp.experiment.tuning.tune import TrialFailedError

    spec = study(objective={"metric": "acc", "mode": "max"}, pruner="none")
    expected = (
        "Trial 0 failed: its evaluations have no metric 'acc' (the objective); they have ['loss']"
    )
    with pytest.raises(TrialFailedError, match=re.escape(expected)):
        tune(make_experiment_fn({}), spec, 2, model_dir=str(tmp_path / "sweep"))
    out = tune(
        make_experiment_fn({}),
        spec,
        2,
        model_dir=str(tmp_path / "sweep"),
        catch=(TrialFailedError,),
    )
    assert [r["state"] for r in out["trials"]] == ["fail", "fail"] and out["best"] is None


def test_a_trial_that_raises_is_failed_once_and_a_rerun_goes_on_with_new_trials(tmp_path):
    model_dir, calls = str(tmp_path / "sweep"), []

    def experiment_fn(run_config, params, trial):
        calls.append(trial.number)
        if trial.number == 0:
            raise RuntimeError("no such activation: 'tanh '")
        return make_experiment_fn({})(run_config, params, trial)

    spec = study(pruner="none")
    with pytest.raises(RuntimeError, match="no such activation"):
        tune(experiment_fn, spec, 3, model_dir=model_dir)
    out = tune(experiment_fn, spec, 3, model_dir=model_dir)
    assert calls[:3] == [0, 1, 2] and calls.count(0) == 1  # trial 0 is not retried forever
    assert [r["state"] for r in out["trials"]] == ["fail", "complete", "complete"]
    assert out["trials"][0]["failure"] == "RuntimeError: no such activation: 'tanh '"


def test_a_link_planted_as_a_trial_dir_is_refused(tmp_path):
    from airflow_tfexp.experiment.errors import UnsafeModelDirError

    model_dir, victim = tmp_path / "sweep", tmp_path / "victim"
    (model_dir / "trials").mkdir(parents=True)
    victim.mkdir()
    (model_dir / "trials" / "0").symlink_to(victim)
    with pytest.raises(UnsafeModelDirError, match="outside the model dir"):
        tune(make_experiment_fn({}), study(), 1, model_dir=str(model_dir))
    assert list(victim.iterdir()) == []


def test_a_worker_racing_another_past_the_total_runs_no_extra_trial(tmp_path, monkeypatch):
    """Two workers read the count at once: the later ask's trial is numbered past the total
    and is marked surplus (failed, never run) instead of trained."""
    model_dir = str(tmp_path / "sweep")
    spec = StudySpec.from_value(study())
    opened = open_study(spec, model_dir)
    ask_trials(opened, spec, model_dir, 2, total=2, wave="other-worker")
    monkeypatch.setattr(opened, "get_trials", lambda **kwargs: [])  # read before the other asked
    assert ask_trials(opened, spec, model_dir, 1, total=2, wave="this-worker") == []
    monkeypatch.undo()
    (surplus,) = [t for t in opened.get_trials() if t.number == 2]
    assert surplus.state.name == "FAIL" and surplus.user_attrs["tfexp_surplus"] is True


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_seeded_sweep_draws_new_values_each_wave_and_the_same_ones_again_from_scratch(
    tmp_path, sampler
):
    def waves(model_dir: str) -> list[float]:
        spec = StudySpec.from_value(study(sampler=sampler))
        drawn = suggest_trials(spec, model_dir, 2, total=4, wave="run-1")
        drawn += suggest_trials(spec, model_dir, 2, total=4, wave="run-2")
        return [t.params["x"] for t in drawn]

    first = waves(str(tmp_path / "a"))
    assert len(set(first)) == 4  # each wave (each process opening the study) draws anew
    assert waves(str(tmp_path / "b")) == first  # and the seed makes the sweep reproducible


def test_a_damaged_study_journal_is_an_error_naming_the_file(tmp_path):
    model_dir = tmp_path / "sweep"
    model_dir.mkdir()
    (model_dir / "study.journal").write_text("not json at all\n")
    with pytest.raises(
        ValueError, match=r"cannot be read from .*study\.journal .*Move the damaged file aside"
    ):
        open_study(StudySpec.from_value(study()), str(model_dir))
