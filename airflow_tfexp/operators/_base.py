"""The base of every Experiment operator: validate early, build the Experiment late."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_tfexp._airflow import (
    is_templated,
    run_start_timestamp,
    scoped_environment,
    stops_on_sigterm,
)
from airflow_tfexp.experiment.experiment_fn import parse_experiment_fn
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.names import DEFAULT_GCP_CONN_ID
from airflow_tfexp.operators._lineage import LineageMixin
from airflow_tfexp.operators._ownership import check_experiment_id
from airflow_tfexp.operators._run_params import snapshot_params

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_tfexp.experiment import Experiment


class _TaskLinks:
    """`operator_extra_links`, imported when Airflow first asks for them (serializing the DAG),
    not while the DAG file is parsed: Airflow's link base class alone costs ~0.5 ms to import."""

    def __get__(self, instance: Any, owner: type) -> tuple:
        from airflow_tfexp.links import TASK_LINKS

        return TASK_LINKS


def trainer_identity(context: Context) -> Any:
    """Who holds the trainer lease for this task: its task instance and try, so that a retry
    takes over from a killed earlier try at once (`[tfexp] trainer_lease_secs` for others)."""
    from airflow_tfexp._config import trainer_lease_secs
    from airflow_tfexp.experiment.training_lease import TrainerIdentity

    ti = context.get("ti")
    if ti is None:
        return TrainerIdentity(lease_secs=trainer_lease_secs())
    task = f"{ti.dag_id}/{ti.task_id}/{ti.run_id}/{getattr(ti, 'map_index', -1)}"
    return TrainerIdentity(
        task=task, try_number=getattr(ti, "try_number", None), lease_secs=trainer_lease_secs()
    )


class ExperimentBaseOperator(LineageMixin, BaseOperator):
    """Builds `experiment_fn(run_config, params)` inside `execute()` and runs one of its methods.

    :param experiment_fn: "module:function" returning an `Experiment` (checked at parse time,
        imported when the task runs; not templated: a run's conf never chooses code).
    :param model_dir: a local path or `gs://bucket/prefix` (templated).
    :param params: the task's Airflow params (merged with the DAG's, and with the run's conf when
        it overrides params), passed to `experiment_fn` as its `params` dict: templates the DAG
        file wrote are rendered to native values in Jinja's sandbox, values from the run's conf
        are data (never rendered), `tfexp_*` params always come from the DAG file. A run
        triggered by assets also gets their events there, under "tfexp_asset_events" (uri,
        extra, timestamp).
    :param tf_config: a `TF_CONFIG` dict for this task (templated); None keeps the environment's.
    :param gcp_conn_id: the Airflow connection whose credentials reach a gs:// model dir; without
        such a connection, Application Default Credentials are used.
    :param experiment_id: the experiment this task writes for: the dag_id of its training DAG
        (None: this DAG's). The first task to write a model dir stamps it with this; a task of
        another experiment fails before writing there. Fixed in the DAG file, not templated.
    :param overridable_params: the params a run's conf may change (None: any, Airflow's
        default); a conf value for another key is ignored, with a warning in the log. The DAG
        factory sets it to the config's `params:`.
    :param trial: a trial of a sweep (an item of `SuggestTrialsOperator`'s output, or the best
        trial `CompleteTrialsOperator` pushes): the step runs in the trial's model dir
        (`<model_dir>/trials/<number>`) with the trial's values over the params.
    :param authored_params: set by `partial()` for mapped tasks (the DAG file's params); leave it.
    """

    # experiment_id is not templated (a template is refused): listed so the rendered fields
    # record it next to model_dir for the Experiments pages' owner check.
    template_fields: Sequence[str] = ("model_dir", "tf_config", "experiment_id", "trial")
    template_fields_renderers = {"tf_config": "json"}
    ui_color = "#ffa800"
    ui_fgcolor = "#000000"
    operator_extra_links = _TaskLinks()  # type: ignore[assignment]

    def __init__(
        self,
        *,
        experiment_fn: str,
        model_dir: str,
        tf_config: dict[str, Any] | None = None,
        gcp_conn_id: str = DEFAULT_GCP_CONN_ID,
        experiment_id: str | None = None,
        overridable_params: Sequence[str] | None = None,
        trial: Any = None,
        authored_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trial = trial
        self.sweep_model_dir: str | None = None  # the sweep's model dir, once in a trial's
        self.gcp_conn_id = gcp_conn_id
        if is_templated(experiment_fn):
            raise ValueError(
                f"Invalid value for `experiment_fn`. Received: {experiment_fn!r}. Expected a "
                '"module:function" written in the DAG file: it names code to import, so it is '
                "fixed when the DAG is parsed (a template would let a run's conf choose it)."
            )
        parse_experiment_fn(experiment_fn)
        check_experiment_id(experiment_id)
        if not is_templated(model_dir):
            parse_model_dir(model_dir)
        if tf_config is not None and not isinstance(tf_config, dict | str):
            raise ValueError(
                f"Invalid value for `tf_config`. Received: {tf_config!r}. Expected a dict."
            )
        self.experiment_fn = experiment_fn
        self.model_dir = model_dir
        self.tf_config = tf_config
        self.experiment_id = experiment_id
        self.overridable_params = None if overridable_params is None else list(overridable_params)
        # The params as the DAG file declares them, before any run's conf is merged into them
        # (a mapped task is built while it runs, after that: `partial` hands it the snapshot).
        self.authored_params = (
            authored_params if authored_params is not None else snapshot_params(self.params)
        )

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """Airflow's `partial`, plus the params as the DAG file declares them, snapshotted now:
        a mapped task's operator is built at run time from Param objects that by then hold the
        run's conf."""
        operator_partial = super().partial(**kwargs)
        operator_partial.kwargs["authored_params"] = snapshot_params(operator_partial.params)
        return operator_partial

    def experiment_params(self, context: Context) -> dict[str, Any]:
        """What `experiment_fn` gets as params (see `_run_params`): the DAG file's values with
        templates rendered in Jinja's sandbox ("{{ 6 * 5 }}" gives 30), the run's conf as data."""
        from airflow_tfexp.operators._run_params import experiment_params

        params = experiment_params(
            self.authored_params,
            context,
            self.get_template_env,
            self.log,
            self.overridable_params,
        )
        if self.trial is not None:  # the study's values, not the run's conf: they win
            params.update(self.trial["params"])
        return params

    def enter_trial(self) -> None:
        """With a `trial`: check it, and run in its model dir from here on (once)."""
        if self.trial is None or self.sweep_model_dir is not None:
            return
        from airflow_tfexp.operators._tuning import checked_trial

        parse_model_dir(self.model_dir)
        self.trial = checked_trial(self.trial, self.model_dir, getattr(self, "study", None))
        self.sweep_model_dir, self.model_dir = self.model_dir, self.trial["model_dir"]

    def execute(self, context: Context) -> Any:
        from airflow_tfexp.experiment.training_lease import training_as

        self.enter_trial()
        self.check_rendered()  # no I/O: a bad or out-of-roots path fails before anything else
        with (
            stops_on_sigterm(self.task_id),
            self.step_environment(context),
            training_as(trainer_identity(context)),
        ):
            self.claim_model_dir()
            return self.remember_for_lineage(context, self.run_step(context))

    @contextlib.contextmanager
    def step_environment(self, context: Context | None = None) -> Iterator[None]:
        """TF_CONFIG and (for gs:// model dirs) the `gcp_conn_id` credentials of this step;
        completion markers older than its DAG run are an earlier run's (ignored)."""
        from airflow_tfexp._config import eval_warn_batches
        from airflow_tfexp.experiment.evaluation.coordination import completions_after
        from airflow_tfexp.hooks.gcp_credentials import gcp_credentials

        with (
            self.tf_config_environment(),
            gcp_credentials(self.gcp_conn_id, self.model_dir, self.log),
            completions_after(run_start_timestamp(context) if context else None),
            # read by the engine and by the processes this task starts (Ray workers, the CLI)
            scoped_environment({"TFEXP_EVAL_WARN_BATCHES": str(eval_warn_batches())}),
        ):
            yield

    def run_step(self, context: Context) -> Any:
        """The step itself; `execute` wraps it with this task's TF_CONFIG."""
        raise NotImplementedError

    @contextlib.contextmanager
    def tf_config_environment(self) -> Iterator[None]:
        """Set TF_CONFIG for the duration of the step (MultiWorkerMirroredStrategy reads the
        environment) and restore it after: tasks may share a process (dag.test)."""
        if not self.tf_config:
            yield
            return
        value = self.tf_config if isinstance(self.tf_config, str) else json.dumps(self.tf_config)
        with scoped_environment({"TF_CONFIG": value}):
            yield

    @property
    def experiment(self) -> str:
        """The experiment this task writes for (its `experiment_id`, else its DAG's id)."""
        return self.experiment_id or self.dag_id

    def check_rendered(self) -> None:
        """Check `model_dir` again once templates are rendered (a template was not checked at
        parse time), and that it is inside `[tfexp] model_dir_roots`: no I/O."""
        from airflow_tfexp.operators._ownership import check_inside_roots

        parse_model_dir(self.model_dir)
        check_inside_roots(self.model_dir, "model_dir")

    def claim_model_dir(self) -> None:
        """Before anything is written: the model dir is this experiment's (stamped as such
        when it is nobody's yet), else ModelDirOwnershipError naming its owner."""
        from airflow_tfexp.operators._ownership import claim_for_writing

        claim_for_writing(self.model_dir, self.experiment, "model_dir", self.log)

    def build_experiment(self, context: Context) -> Experiment:
        """Import and call experiment_fn; a failure shows its traceback in the task log."""
        from airflow_tfexp.experiment import RunConfig
        from airflow_tfexp.experiment.experiment_fn import build_experiment

        self.check_rendered()
        run_config = RunConfig(model_dir=self.model_dir)
        self.log.info(
            "Building %s in %s (task %s:%s).",
            self.experiment_fn,
            self.model_dir,
            run_config.task_type,
            run_config.task_id,
        )
        return build_experiment(
            self.experiment_fn, run_config, self.experiment_params(context), "experiment_fn"
        )


def checkpoint_summary(
    experiment: Experiment, checkpoint_path: str | None = None
) -> dict[str, Any]:
    """The XCom-friendly description of a checkpoint (the latest by default)."""
    from airflow_tfexp.experiment.storage.checkpoints import checkpoint_step

    if checkpoint_path is None:
        latest = experiment.latest_checkpoint()
        checkpoint_path = latest.checkpoint_path if latest else None
    return {
        "model_dir": experiment.model_dir,
        "checkpoint_path": checkpoint_path,
        "global_step": checkpoint_step(checkpoint_path) if checkpoint_path else None,
    }
