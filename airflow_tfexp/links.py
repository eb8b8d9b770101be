"""Task buttons on train / evaluate / export tasks: the run's Experiments page, the model dir,
and TensorBoard when `[tfexp] tensorboard_url` is set."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

from airflow_tfexp._airflow import is_templated
from airflow_tfexp.experiment.storage.fs import is_gcs

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.sdk import BaseOperator


def _base_url() -> str:
    from airflow.sdk import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def run_page_url(dag_id: str, run_id: str) -> str:
    """The Experiments page of one DAG run (under `[api] base_url`)."""
    return f"{_base_url()}/tfexp/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _run_page(ti_key: TaskInstanceKey) -> str:
    return run_page_url(ti_key.dag_id, ti_key.run_id)


class ExperimentMetricsLink(BaseOperatorLink):
    """The run's page in the Experiments view: plots, evaluations, checkpoints, exports."""

    name = "Experiment metrics"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return _run_page(ti_key)


class ModelDirLink(BaseOperatorLink):
    """The model dir: the GCS console for gs://, else the run's page (which names it)."""

    name = "Model dir"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        model_dir = str(getattr(operator, "model_dir", "") or "")
        if is_gcs(model_dir) and not is_templated(model_dir):
            return f"https://console.cloud.google.com/storage/browser/{model_dir[len('gs://') :]}"
        return _run_page(ti_key)


class TensorBoardLink(BaseOperatorLink):
    """`[tfexp] tensorboard_url`, with `{model_dir}`, `{dag_id}` and `{run_id}` filled in;
    no button when it is not set."""

    name = "TensorBoard"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk import conf

        template = conf.get("tfexp", "tensorboard_url", fallback="") or ""
        if not template:
            return ""
        return template.format(
            model_dir=quote(str(getattr(operator, "model_dir", "")), safe=""),
            dag_id=quote(ti_key.dag_id, safe=""),
            run_id=quote(ti_key.run_id, safe=""),
        )


TASK_LINKS = (ExperimentMetricsLink(), ModelDirLink(), TensorBoardLink())
