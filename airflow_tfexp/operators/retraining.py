"""The blessing gate and publishing: retrain -> bless (better than production?) -> publish."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_tfexp._airflow import asset_uri, is_templated, stops_on_sigterm
from airflow_tfexp.experiment.storage.fs import is_gcs
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.names import DEFAULT_GCP_CONN_ID
from airflow_tfexp.operators._base import ExperimentBaseOperator
from airflow_tfexp.operators._lineage import LineageMixin
from airflow_tfexp.operators._ownership import (
    check_experiment_id,
    check_inside_roots,
    claim_for_writing,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


def publish_asset(publish_dir: str) -> Any:
    """The asset a publish updates: downstream DAGs (a deploy) schedule on it."""
    from airflow.sdk import Asset

    return Asset(uri=asset_uri(publish_dir))


def _candidate_export(model_dir: str, exporter_name: str | None) -> str:
    """The newest export under `model_dir/export/<exporter>/` (the only exporter, if unnamed)."""
    from airflow_tfexp.experiment.export.export_dirs import list_exports
    from airflow_tfexp.experiment.storage.fs import filesystem, join

    base = join(model_dir, "export")
    names = sorted(filesystem(base).listdir(base))
    if exporter_name is None:
        if len(names) != 1:
            raise ValueError(
                f"Cannot choose the candidate export: {base} has exporters {names}. Set "
                "`exporter_name` (one of them) or `candidate_export`."
            )
        exporter_name = names[0]
    exports = list_exports(join(base, exporter_name))
    if not exports:
        raise ValueError(
            f"No candidate to bless: {join(base, exporter_name)} holds no export "
            f"(exporters there: {names}). Run the export step first."
        )
    return exports[-1]


class BlessOperator(ExperimentBaseOperator):
    """Bless the candidate export when it beats the published model on the same evaluation data.

    Both the candidate and the baseline (the model `publish_dir/LATEST` points at) are evaluated
    now, in this task, with the experiment's `eval_input_fn`, loss and metrics: the baseline's
    old numbers are never trusted. The decision (blessed or not, both values, why) goes to
    `model_dir/blessing.json` and the run's lineage; a retry returns the recorded decision for
    the same candidate. A candidate that is not blessed is not an error: the publish step skips.

    :param publish_dir: where the production model is published (local or gs://; templated).
    :param metric: the evaluation metric to compare, e.g. "loss" or "accuracy".
    :param mode: "min" (smaller is better) or "max".
    :param min_delta: how much better than the baseline the candidate must be.
    :param threshold: the candidate must also reach this value (at most for min, at least for max).
    :param bless_without_baseline: bless a first candidate (nothing published yet) on the
        threshold alone (or, without a threshold, at all).
    :param candidate_export: the export to judge (templated); default: the newest export of
        `exporter_name` (or of the only exporter) under `model_dir/export/`.
    :return: the blessing record.
    """

    template_fields: Sequence[str] = (
        *ExperimentBaseOperator.template_fields,
        "publish_dir",
        "candidate_export",
    )
    ui_color = "#c8e6c9"

    def __init__(
        self,
        *,
        publish_dir: str,
        metric: str,
        mode: str = "min",
        min_delta: float = 0.0,
        threshold: float | None = None,
        bless_without_baseline: bool = True,
        candidate_export: str | None = None,
        exporter_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_tfexp.experiment.retraining.blessing import BlessingSpec

        if not is_templated(publish_dir):
            parse_model_dir(publish_dir, "publish_dir")
        self.spec = BlessingSpec(metric, mode, min_delta, threshold, bless_without_baseline)
        self.publish_dir = publish_dir
        self.candidate_export = candidate_export
        self.exporter_name = exporter_name

    def run_step(self, context: Context) -> dict[str, Any]:
        from airflow_tfexp.experiment.evaluation.results import read_all_results
        from airflow_tfexp.experiment.retraining.blessing import (
            decide,
            read_blessing,
            write_blessing,
        )
        from airflow_tfexp.experiment.retraining.lineage import update_lineage
        from airflow_tfexp.experiment.retraining.publishing import latest_published

        candidate = self.candidate_export or _candidate_export(self.model_dir, self.exporter_name)
        recorded = read_blessing(self.model_dir)
        if recorded and recorded.get("candidate_export") == candidate:
            self.log.info(
                "%s was already judged (blessed=%s: %s); returning that decision.",
                candidate,
                recorded["blessed"],
                recorded["reason"],
            )
            return recorded
        experiment = self.build_experiment(context)
        self.log.info("Evaluating the candidate %s.", candidate)
        candidate_metrics = experiment.evaluate_export(candidate)
        pointer = latest_published(self.publish_dir)
        baseline_metrics = None
        if pointer is None:
            self.log.info("Nothing is published in %s yet: no baseline.", self.publish_dir)
        else:
            self.log.info(
                "Re-evaluating the published baseline, version %s (%s), on the same data.",
                pointer["version"],
                pointer["path"],
            )
            baseline_metrics = experiment.evaluate_export(pointer["path"])
        record = {
            **decide(self.spec, candidate_metrics, baseline_metrics),
            "candidate_export": candidate,
            "candidate_metrics": candidate_metrics,
            "baseline_version": pointer and pointer["version"],
            "baseline_path": pointer and pointer["path"],
            "baseline_metrics": baseline_metrics,
        }
        record = write_blessing(self.model_dir, record)
        update_lineage(
            self.model_dir,
            {
                "evaluations": {
                    "checkpoints": read_all_results(self.model_dir),
                    "candidate": candidate_metrics,
                    "baseline": baseline_metrics,
                },
                "blessing": record,
            },
        )
        self.log.info(
            "%s: %s.", "BLESSED" if record["blessed"] else "NOT BLESSED", record["reason"]
        )
        return record

    def note_lineage(self, step: Any, result: Any) -> None:
        """Read: the candidate export and the published baseline; the decision as a facet."""
        if isinstance(result, dict):
            step.add_inputs(result.get("candidate_export"), result.get("baseline_path"))
            step.blessing = result
        else:
            step.add_inputs(self.candidate_export or self.model_dir)


def check_candidate_export(candidate: Any, model_dir: str) -> str:
    """The export `blessing.json` names, only if it is one of the model dir's and holds no link
    leading out of it: a hostile blessing file must not publish another path (or what it links
    to) as the blessed model."""
    from airflow_tfexp.experiment.storage.confinement import links_leaving, within_roots
    from airflow_tfexp.experiment.storage.locations import parse_model_dir

    if not isinstance(candidate, str) or not candidate:
        raise ValueError(f"{model_dir}/blessing.json names no candidate export: {candidate!r}.")
    parse_model_dir(candidate, "candidate_export")
    if not within_roots(candidate, [model_dir]):
        raise ValueError(
            f"{model_dir}/blessing.json names the candidate export {candidate!r}, which is not "
            "in the model dir: refusing to publish it."
        )
    if not is_gcs(candidate) and links_leaving(candidate):
        link, target = links_leaving(candidate)[0]
        raise ValueError(f"The export {candidate} links out of itself ({link} -> {target}).")
    return candidate


class PublishOperator(LineageMixin, BaseOperator):
    """Publish the blessed candidate: copy it to `publish_dir/<version>/`, then move
    `publish_dir/LATEST` (atomically) to it, and emit an event on the `publish_dir` asset.

    Skips (with the reason in the log) when the blessing says no, and when the candidate is
    older than the model LATEST points at (by the runs' logical dates, else by when each was
    blessed): re-running an old day never rolls production back, unless `allow_rollback`.
    Idempotent: a retry reuses the version already copied for the same export. Concurrent
    publishers get distinct versions.

    :param model_dir: the run's model dir, where `blessing.json` is (templated).
    :param publish_dir: where models are published (templated); stamped as this
        experiment's, like a model dir.
    :param experiment_id: as for the experiment operators (None: this DAG's id).
    :param allow_rollback: publish (and point LATEST at) the candidate even when it is older
        than what LATEST holds: an explicit rollback.
    :param trial: a sweep's trial (the best, say): its model dir holds the blessing.
    :return: the LATEST pointer: version, path, source export, metrics.
    """

    template_fields: Sequence[str] = ("model_dir", "publish_dir", "experiment_id", "trial")
    ui_color = "#a5d6a7"

    def __init__(
        self,
        *,
        model_dir: str,
        publish_dir: str,
        gcp_conn_id: str = DEFAULT_GCP_CONN_ID,
        experiment_id: str | None = None,
        allow_rollback: bool = False,
        trial: Any = None,
        **kwargs: Any,
    ) -> None:
        check_experiment_id(experiment_id)
        if not isinstance(allow_rollback, bool):
            raise TypeError(
                f"Invalid value for `allow_rollback`. Received: {allow_rollback!r}. Expected True "
                "or False."
            )
        if not is_templated(publish_dir):
            parse_model_dir(publish_dir, "publish_dir")
            kwargs.setdefault("outlets", [publish_asset(publish_dir)])
        if not is_templated(model_dir):
            parse_model_dir(model_dir)
        super().__init__(**kwargs)
        self.model_dir = model_dir
        self.publish_dir = publish_dir
        self.gcp_conn_id = gcp_conn_id
        self.experiment_id = experiment_id
        self.allow_rollback = allow_rollback
        self.trial = trial

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_tfexp.hooks.gcp_credentials import gcp_credentials

        if self.trial is not None:
            from airflow_tfexp.operators._tuning import checked_trial

            parse_model_dir(self.model_dir)
            self.model_dir = checked_trial(self.trial, self.model_dir)["model_dir"]

        for value, what in ((self.model_dir, "model_dir"), (self.publish_dir, "publish_dir")):
            parse_model_dir(value, what)
            check_inside_roots(value, what)
        experiment = self.experiment_id or self.dag_id
        remote = next((d for d in (self.publish_dir, self.model_dir) if is_gcs(d)), "")
        with stops_on_sigterm(self.task_id), gcp_credentials(self.gcp_conn_id, remote, self.log):
            claim_for_writing(self.model_dir, experiment, "model_dir", self.log)
            claim_for_writing(self.publish_dir, experiment, "publish_dir", self.log)
            return self.remember_for_lineage(context, self._publish(context))

    def note_lineage(self, step: Any, result: Any) -> None:
        """Read: the blessed export; written: the publish dir, at the version published."""
        if isinstance(result, dict):
            step.add_inputs(result.get("source"))
            step.add_outputs(self.publish_dir)
            step.versions[self.publish_dir] = str(result.get("version"))
        else:
            step.add_inputs(self.model_dir)

    def _publish(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_tfexp.experiment.retraining.blessing import is_blessed, read_blessing
        from airflow_tfexp.experiment.retraining.lineage import update_lineage
        from airflow_tfexp.experiment.retraining.publishing import (
            OlderThanPublishedError,
            publish_export,
        )

        blessing = read_blessing(self.model_dir)
        if blessing is None:
            raise ValueError(
                f"No blessing in {self.model_dir}: run the bless step (BlessOperator) first."
            )
        if not is_blessed(blessing):
            update_lineage(self.model_dir, {"published": None})
            raise AirflowSkipException(f"Not publishing: not blessed ({blessing['reason']}).")
        candidate = check_candidate_export(blessing.get("candidate_export"), self.model_dir)
        run = context.get("dag_run")
        run_date = getattr(run, "logical_date", None) or getattr(run, "run_after", None)
        try:
            pointer = publish_export(
                candidate,
                self.publish_dir,
                {
                    "dag_id": getattr(run, "dag_id", None),
                    "run_id": getattr(run, "run_id", None),
                    "logical_date": run_date.isoformat() if run_date else None,
                    "blessed_at": blessing.get("decided_at"),
                    "model_dir": self.model_dir,
                    "metric": blessing["metric"],
                    "value": blessing["candidate"],
                    "baseline": blessing["baseline"],
                },
                allow_rollback=self.allow_rollback,
            )
        except OlderThanPublishedError as err:
            update_lineage(self.model_dir, {"published": None, "publish_skipped": str(err)})
            raise AirflowSkipException(str(err)) from None
        update_lineage(self.model_dir, {"published": pointer})
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "version": pointer["version"],
                "path": pointer["path"],
                "source": pointer["source"],
            }
        self.log.info("Published version %s at %s.", pointer["version"], pointer["path"])
        return pointer
