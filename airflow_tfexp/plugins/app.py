"""The Experiments pages: a FastAPI app the plugin mounts in Airflow's API server at /tfexp.

Airflow does not authenticate plugin apps, so every route here does: the caller must carry the
Airflow UI's session cookie or a Bearer token (else 401), and may see only the DAGs the auth
manager lets them read (else 403; lists are filtered).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import HTMLResponse

MOUNT = "/tfexp"
TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


def _readable_dag_ids(user: Any) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def _check_dag_access(user: Any, dag_id: str) -> None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    if not get_auth_manager().is_authorized_dag(
        method="GET", details=DagDetails(id=dag_id), user=user
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"You may not read DAG {dag_id!r}.")


def _run_view(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from airflow_tfexp.plugins.catalog import run_model_dirs
    from airflow_tfexp.plugins.charts import line_chart
    from airflow_tfexp.plugins.run_data import read_run_data

    models = []
    for model_dir in run_model_dirs(dag_id, run_id):
        data = read_run_data(model_dir)
        charts = []
        if data.training:
            loss = {tag: pts for tag, pts in data.training.items() if "loss" in tag}
            charts.append(line_chart("training loss", loss or data.training, "train-point"))
        for metric in data.metric_names:
            series = {
                evaluator: [
                    (r["global_step"], r["metrics"][metric])
                    for r in records
                    if isinstance(r.get("metrics", {}).get(metric), int | float)
                ]
                for evaluator, records in data.evaluations.items()
            }
            charts.append(line_chart(f"evaluation {metric}", series, "eval-point"))
        models.append({"data": data, "charts": charts})
    return models


def create_app() -> FastAPI:
    import jinja2
    from airflow.api_fastapi.core_api.security import get_user

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape()
    )
    app = FastAPI(
        title="airflow-tfexp Experiments", docs_url=None, redoc_url=None, openapi_url=None
    )
    User = Depends(get_user)

    def page(name: str, **values: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(root=f"{MOUNT}/", **values))

    @app.get("/", response_class=HTMLResponse)
    def index(user: Any = User) -> HTMLResponse:
        from airflow_tfexp.plugins.catalog import experiment_dag_ids, runs

        dags = [
            {"dag_id": d, "runs": runs(d, limit=10)}
            for d in experiment_dag_ids(_readable_dag_ids(user))
        ]
        return page("index.html", dags=dags)

    @app.get("/dags/{dag_id}", response_class=HTMLResponse)
    def dag_page(dag_id: str, user: Any = User) -> HTMLResponse:
        from airflow_tfexp.plugins.catalog import runs

        _check_dag_access(user, dag_id)
        return page("dag.html", dag_id=dag_id, runs=runs(dag_id))

    @app.get("/dags/{dag_id}/runs/{run_id}", response_class=HTMLResponse)
    def run_page(dag_id: str, run_id: str, user: Any = User) -> HTMLResponse:
        _check_dag_access(user, dag_id)
        return page("run.html", dag_id=dag_id, run_id=run_id, models=_run_view(dag_id, run_id))

    @app.get("/api/dags")
    def api_dags(user: Any = User) -> dict[str, Any]:
        from airflow_tfexp.plugins.catalog import experiment_dag_ids

        return {"dag_ids": experiment_dag_ids(_readable_dag_ids(user))}

    @app.get("/api/dags/{dag_id}/runs/{run_id}")
    def api_run(dag_id: str, run_id: str, user: Any = User) -> dict[str, Any]:
        from airflow_tfexp.plugins.catalog import run_model_dirs
        from airflow_tfexp.plugins.run_data import read_run_data

        _check_dag_access(user, dag_id)
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "models": [read_run_data(d).as_dict() for d in run_model_dirs(dag_id, run_id)],
        }

    return app
