"""One operator per Experiment step. Each returns a small JSON-able result through XCom."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_tfexp._airflow import is_templated, jsonable
from airflow_tfexp.experiment._validation import check_optional_seconds
from airflow_tfexp.experiment.evaluation.results import check_evaluator_name
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.names import DEFAULT_RAY_CONN_ID
from airflow_tfexp.operators._base import ExperimentBaseOperator, checkpoint_summary
from airflow_tfexp.operators._lineage import note_metrics

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_tfexp.experiment import Experiment


class _TrainingOperator(ExperimentBaseOperator):
    """What a training step adds: warm starting a fresh model, spreading training over Ray
    workers, and recording the run's lineage.

    :param warm_start_from: where a model with no checkpoint yet starts from (templated):
        "latest_blessed" (the model published in `publish_dir`, if any), a checkpoint, model
        dir or export path, or None / "none". A retry resumes from its own checkpoints instead.
    :param warm_start_optimizer: also restore the optimizer's state (checkpoints only).
    :param publish_dir: where blessed models are published (for "latest_blessed").
    :param record_lineage: write `model_dir/run.json` (params, triggering data events, warm start).
    :param distribution: how training is spread (see `DistributionSpec`): e.g.
        ``{"strategy": "multi_worker_mirrored", "num_workers": 2, "launcher": "ray"}`` runs the
        workers on Ray with this task as the driver. Checked at parse time.
    :param ray_conn_id: the Airflow connection naming the Ray cluster (host and port of its
        client server, or an `address` extra); without it, an embedded Ray runs for the task.
    """

    template_fields: Sequence[str] = (
        *ExperimentBaseOperator.template_fields,
        "warm_start_from",
        "publish_dir",
    )

    def __init__(
        self,
        *,
        warm_start_from: str | None = None,
        warm_start_optimizer: bool = False,
        publish_dir: str | None = None,
        record_lineage: bool = True,
        distribution: dict[str, Any] | None = None,
        ray_conn_id: str = DEFAULT_RAY_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if warm_start_from is not None:  # imported only when used: DAG files parse faster
            from airflow_tfexp.operators._retraining import check_warm_start

            check_warm_start(warm_start_from, publish_dir)
        if publish_dir is not None and not is_templated(publish_dir):
            parse_model_dir(publish_dir, "publish_dir")
        self.warm_start_from = warm_start_from
        self.warm_start_optimizer = warm_start_optimizer
        self.publish_dir = publish_dir
        self.record_lineage = record_lineage
        self.distribution = None
        if distribution is not None:
            from airflow_tfexp.launchers.spec import DistributionSpec

            self.distribution = DistributionSpec.from_value(distribution).as_dict()
        self.ray_conn_id = ray_conn_id

    def check_rendered(self) -> None:
        """The base's checks, and `publish_dir` (read for "latest_blessed") and a warm-start
        path inside `[tfexp] model_dir_roots` too: a run's conf may choose them."""
        from airflow_tfexp.operators._ownership import check_inside_roots
        from airflow_tfexp.operators._retraining import LATEST_BLESSED, NO_WARM_START

        super().check_rendered()
        if self.publish_dir:
            parse_model_dir(self.publish_dir, "publish_dir")
            check_inside_roots(self.publish_dir, "publish_dir")
        if self.warm_start_from not in (None, "", NO_WARM_START, LATEST_BLESSED):
            check_inside_roots(self.warm_start_from, "warm_start_from")

    @property
    def on_ray(self) -> bool:
        return bool(self.distribution) and self.distribution["launcher"] == "ray"

    def train_here_or_on_ray(self, context: Context, train: Callable[[Experiment], Any]) -> Any:
        """Resolve the warm-start source once, then train: `train(experiment)` in this process,
        or the Ray job (`distribution.launcher: ray`) with this task as its driver; either
        way, record the lineage with the source training actually used. Returns the step's
        summary and what `train` returned (None on Ray)."""
        from airflow_tfexp.operators._retraining import record_training_lineage, resolve_warm_start

        params = self.experiment_params(context)
        source = resolve_warm_start(self.warm_start_from, self.publish_dir, self.log)
        if self.on_ray:
            summary, outcome = self._train_on_ray(context, params, source), None
        else:
            from airflow_tfexp.experiment.retraining.warm_start import apply_warm_start

            experiment = self.build_experiment(context)
            apply_warm_start(experiment, source, self.warm_start_optimizer)
            outcome = train(experiment)
            summary = {
                **checkpoint_summary(experiment),
                "warm_started_from": getattr(experiment.estimator, "warm_started_from", None),
            }
        if self.record_lineage:
            record_training_lineage(
                self.model_dir, context, params, self.warm_start_from, summary["warm_started_from"]
            )
        return summary, outcome

    def _train_on_ray(
        self, context: Context, params: dict[str, Any], source: str | None
    ) -> dict[str, Any]:
        """The Ray job; its summary comes from what the chief (the first worker) reported."""
        from airflow_tfexp.experiment.storage.checkpoints import checkpoint_step
        from airflow_tfexp.launchers.ray_launcher import train_on_ray
        from airflow_tfexp.launchers.spec import DistributionSpec

        self.check_rendered()
        result = train_on_ray(
            experiment_fn=self.experiment_fn,
            model_dir=self.model_dir,
            params=params,
            spec=DistributionSpec(**self.distribution),
            warm_start_from=source,
            warm_start_optimizer=self.warm_start_optimizer,
            ray_conn_id=self.ray_conn_id,
            task_log=self.log,
        )
        chief = result["workers"][0]
        summary = {
            "model_dir": self.model_dir,
            "checkpoint_path": chief["checkpoint_path"],
            "global_step": checkpoint_step(chief["checkpoint_path"])
            if chief["checkpoint_path"]
            else None,
            "warm_started_from": chief["warm_started_from"],
            "workers": result["workers"],
        }
        if "servers" in result:  # parameter_server: the ps and worker servers and how they ended
            summary["servers"] = result["servers"]
            summary["stopped_servers"] = result["stopped_servers"]
        return summary

    def note_lineage(self, step: Any, result: Any) -> None:
        """Read: the run's triggering data and the warm-start source; written: the model dir,
        and the exports and final evaluation when the step made them (and, for every step,
        the inlets and outlets the DAG file declares)."""
        step.add_inputs(*(self.lineage_data_events or []))
        if isinstance(result, dict):
            step.add_inputs(result.get("warm_started_from"))
            step.add_outputs(self.model_dir, *(result.get("export_paths") or []))
            note_metrics(step, result)
        else:
            step.add_outputs(self.model_dir)

    def on_kill(self) -> None:
        """A killed task stops its Ray job: the embedded Ray and its workers go with it."""
        if self.on_ray:
            from airflow_tfexp.launchers.ray_launcher import stop_ray

            stop_ray()


def check_checkpoint_inside(checkpoint_path: Any, model_dir: str) -> None:
    """A given checkpoint (a path, or an item of CheckpointSensor's output) is one of the model
    dir's: the step records its result there, and a run's conf may choose the path."""
    from airflow_tfexp.experiment.storage.confinement import within_roots

    if isinstance(checkpoint_path, dict):
        checkpoint_path = checkpoint_path.get("checkpoint_path")
    if checkpoint_path in (None, ""):
        return
    if not isinstance(checkpoint_path, str) or not within_roots(checkpoint_path, [model_dir]):
        raise ValueError(
            f"Invalid value for `checkpoint_path`. Received: {checkpoint_path!r}. Expected a "
            f"checkpoint of the model dir {model_dir} (a path inside it, or None for the latest)."
        )


class TrainOperator(_TrainingOperator):
    """`Experiment.train`: train to `train_steps`, resuming from the latest checkpoint (or,
    with nothing to resume, warm starting as `warm_start_from` says; see `_TrainingOperator`
    for warm start, distribution and lineage).

    :param delay_secs: seconds to wait first; None applies the Experiment's per-worker delay.
    :return: ``{"model_dir", "checkpoint_path", "global_step", "completion", "warm_started_from"}``
        (and, on Ray, the workers' and servers' summaries).
    """

    def __init__(self, *, delay_secs: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay_secs = check_optional_seconds("delay_secs", delay_secs)

    def run_step(self, context: Context) -> dict[str, Any]:
        from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker

        summary, _ = self.train_here_or_on_ray(
            context, lambda experiment: experiment.train(delay_secs=self.delay_secs)
        )
        return {**summary, "completion": read_completion_marker(self.model_dir)}


class EvaluateOperator(ExperimentBaseOperator):
    """`Experiment.evaluate` on one checkpoint (given, or the latest).

    A checkpoint already evaluated by evaluator `name` is not evaluated again: its recorded
    result is returned, so retries and re-runs are idempotent. Expand it over a
    `CheckpointSensor`'s output for one task instance per checkpoint:
    ``EvaluateOperator.partial(...).expand_kwargs(sensor.output.map(lambda c: {"checkpoint_path": c["checkpoint_path"]}))``
    or simply ``.expand(checkpoint_path=...)``.

    :param checkpoint_path: the checkpoint prefix (templated; a dict with "checkpoint_path" works too).
    :param name: the evaluator name: results go to `model_dir/eval_<name>/`.
    :return: ``{"model_dir", "checkpoint_path", "global_step", "metrics", "name", "reused"}``.
    """

    template_fields: Sequence[str] = (
        *ExperimentBaseOperator.template_fields,
        "checkpoint_path",
        "name",
    )

    def __init__(
        self, *, checkpoint_path: str | dict | None = None, name: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not is_templated(name):
            check_evaluator_name(name)
        self.checkpoint_path = checkpoint_path
        self.name = name

    def check_rendered(self) -> None:
        """The base's checks, a plain evaluator name, and a checkpoint inside the model dir."""
        super().check_rendered()
        check_evaluator_name(self.name)
        check_checkpoint_inside(self.checkpoint_path, self.model_dir)

    def run_step(self, context: Context) -> dict[str, Any]:
        from airflow_tfexp.experiment.evaluation.results import read_results
        from airflow_tfexp.experiment.storage.checkpoints import checkpoint_step

        checkpoint_path = self.checkpoint_path
        if isinstance(checkpoint_path, dict):  # an item of CheckpointSensor's output
            checkpoint_path = checkpoint_path.get("checkpoint_path")
        experiment = self.build_experiment(context)
        if checkpoint_path is None:
            latest = experiment.latest_checkpoint()
            if latest is None:
                raise ValueError(
                    f"Nothing to evaluate: {experiment.model_dir} has no complete checkpoint."
                )
            checkpoint_path = latest.checkpoint_path
        step = checkpoint_step(checkpoint_path)
        recorded = [
            r for r in read_results(experiment.model_dir, self.name) if r["global_step"] == step
        ]
        if recorded:
            self.log.info(
                "Checkpoint %s (step %s) was already evaluated as %r; returning the recorded result.",
                checkpoint_path,
                step,
                self.name,
            )
            metrics, reused = recorded[-1]["metrics"], True
        else:
            metrics, reused = experiment.evaluate_checkpoint(checkpoint_path, name=self.name), False
        return {
            **checkpoint_summary(experiment, checkpoint_path),
            "metrics": jsonable(metrics),
            "name": self.name,
            "reused": reused,
        }

    def note_lineage(self, step: Any, result: Any) -> None:
        super().note_lineage(step, result)
        note_metrics(step, result, self.name)


class ExportOperator(ExperimentBaseOperator):
    """Run the Experiment's export strategies on a checkpoint (given, or the latest).

    The checkpoint's recorded evaluation is used (BestExporter compares it); one never evaluated
    is evaluated first.

    :param checkpoint_path: the checkpoint prefix (templated).
    :param is_the_final_export: passed to the exporters (FinalExporter exports only when True).
    :return: ``{"model_dir", "checkpoint_path", "global_step", "export_paths"}``.
    """

    template_fields: Sequence[str] = (*ExperimentBaseOperator.template_fields, "checkpoint_path")

    def __init__(
        self, *, checkpoint_path: str | None = None, is_the_final_export: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.checkpoint_path = checkpoint_path
        self.is_the_final_export = is_the_final_export

    def check_rendered(self) -> None:
        """The base's checks, and a checkpoint inside the model dir."""
        super().check_rendered()
        check_checkpoint_inside(self.checkpoint_path, self.model_dir)

    def run_step(self, context: Context) -> dict[str, Any]:
        experiment = self.build_experiment(context)
        if not experiment.export_strategies:
            self.log.info("The experiment has no export strategies: nothing to export.")
        paths = experiment.export(
            self.checkpoint_path or None, is_the_final_export=self.is_the_final_export
        )
        for strategy, path in zip(experiment.export_strategies, paths, strict=True):
            self.log.info("Exporter %r: %s", strategy.name, path or "did not export")
        return {
            **checkpoint_summary(experiment, self.checkpoint_path or None),
            "export_paths": paths,
        }

    def note_lineage(self, step: Any, result: Any) -> None:
        super().note_lineage(step, result)
        if isinstance(result, dict):
            step.add_outputs(*(result.get("export_paths") or []))


class TrainAndEvaluateOperator(_TrainingOperator):
    """`Experiment.train_and_evaluate` in one task: train with in-training evaluation, then a
    final evaluation and export (warm starting as `warm_start_from` says; see
    `_TrainingOperator`). On Ray the workers train; this task then evaluates the final
    checkpoint and exports (in-training evaluations are skipped).

    As a trial of a sweep (`trial` and `study` given, mapped over `SuggestTrialsOperator`'s
    output): trains in the trial's model dir with its values, reports each evaluation to the
    study and stops when its pruner says so, exports nothing (the sweep exports its best) and
    tells the study the final evaluation; a retry resumes from the trial's checkpoints, and a
    trial the study has already finished is not trained again.

    :param study: the sweep's study (a `StudySpec` or its dict), with `trial`.
    :param study_conn_id: the Airflow connection naming the study's database.
    :param study_name: the study's name (templated), instead of the spec's.
    :return: ``{"model_dir", "checkpoint_path", "global_step", "metrics", "export_paths"}``
        (and ``"trial"``: the trial's row in the study, for a trial).
    """

    template_fields: Sequence[str] = (*_TrainingOperator.template_fields, "study_name")

    def __init__(
        self,
        *,
        study: dict[str, Any] | None = None,
        study_conn_id: str | None = None,
        study_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.study_name = study_name
        self.study = None
        if study is not None:
            from airflow_tfexp.experiment.tuning.study import StudySpec

            self.study = StudySpec.from_value(study).as_dict()
            if self.on_ray:
                raise ValueError(
                    "Invalid value for `distribution`: a trial trains in its task's process "
                    "(launcher ray is not supported for trials)."
                )
        self.study_conn_id = study_conn_id

    def run_step(self, context: Context) -> dict[str, Any]:
        if self.trial is not None and self.study is not None:
            return self._run_trial(context)
        summary, outcome = self.train_here_or_on_ray(
            context, lambda experiment: experiment.train_and_evaluate()
        )
        if outcome is None:  # trained on Ray: the final evaluation and export run here
            self.log.info("Training done on Ray: the final evaluation and export run here.")
            experiment = self.build_experiment(context)
            eval_result = experiment.evaluate(delay_secs=0)
            outcome = eval_result, experiment.export(eval_result=eval_result)
        eval_result, export_paths = outcome
        return {**summary, "metrics": jsonable(eval_result), "export_paths": export_paths}

    def _run_trial(self, context: Context) -> dict[str, Any]:
        from airflow_tfexp.experiment.tuning.trials import Trial
        from airflow_tfexp.experiment.tuning.tune import train_trial
        from airflow_tfexp.operators._tuning import open_sweep_study

        study, spec = open_sweep_study(
            self.study, self.sweep_model_dir, self.study_conn_id, self.study_name
        )
        trial = Trial.from_value(self.trial, spec, self.sweep_model_dir)
        summary, row = self.train_here_or_on_ray(
            context, lambda experiment: train_trial(experiment, study, spec, trial)
        )
        return {**summary, "metrics": None, "export_paths": [], "trial": row}


class ExperimentTestOperator(ExperimentBaseOperator):
    """`Experiment.test`: train one step, evaluate one step, export (a smoke test of the setup).

    :return: ``{"model_dir", "checkpoint_path", "global_step", "metrics"}``.
    """

    def run_step(self, context: Context) -> dict[str, Any]:
        experiment = self.build_experiment(context)
        metrics = experiment.test()
        return {**checkpoint_summary(experiment), "metrics": jsonable(metrics)}


class StdServerOperator(ExperimentBaseOperator):
    """`Experiment.run_std_server`: serve this task's `tf.distribute.Server` (a parameter server,
    usually) and exit once training has written its completion marker, instead of forever.

    :return: ``{"model_dir", "checkpoint_path", "global_step", "completion"}``.
    """

    def run_step(self, context: Context) -> dict[str, Any]:
        from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker

        experiment = self.build_experiment(context)
        experiment.run_std_server()
        return {
            **checkpoint_summary(experiment),
            "completion": read_completion_marker(experiment.model_dir),
        }
