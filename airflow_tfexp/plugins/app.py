"""The Experiments pages: a FastAPI app the plugin mounts in Airflow's API server at /tfexp.

Airflow does not authenticate plugin apps, so every route here does: the caller must carry the
Airflow UI's session cookie or a Bearer token (else 401), and may see only the DAGs the auth
manager lets them read (else 403; lists are filtered).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.responses import HTMLResponse

from airflow_tfexp.plugins.trends import DEFAULT_RUNS, MAX_RUNS

MOUNT = "/tfexp"
MAX_TABLE_ROWS = 1000  # evaluations listed per evaluator on the page (all are in the API)
MAX_METRICS = 30  # metrics charted and tabled per model dir
MAX_SERIES = 20  # series per chart (evaluators, training tags)
TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
# The trends' runs: the most recent 60 by default, 1 to 500 (else 422, naming the bound)
RUNS_LIMIT = Query(DEFAULT_RUNS, ge=1, le=MAX_RUNS, description="how many recent runs")


def _readable_dag_ids(user: Any) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def _check_dag_access(user: Any, dag_id: str, task_instances: bool = False) -> None:
    """403 unless the user may read the DAG (and, for a run's files, its task instances: as
    Airflow's own rendered-fields endpoint requires)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )

    manager, details = get_auth_manager(), DagDetails(id=dag_id)
    if not manager.is_authorized_dag(method="GET", details=details, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"You may not read DAG {dag_id!r}.")
    if task_instances and not manager.is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.TASK_INSTANCE, details=details, user=user
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"You may not read the task instances of DAG {dag_id!r}."
        )


def _read_models(dag_id: str, run_id: str) -> list[Any]:
    """The run's model dirs as RunData: only dirs inside the roots that belong to an
    experiment this DAG writes for, files capped at `[tfexp] ui_max_file_mb`."""
    from airflow_tfexp._config import model_dir_roots, ui_max_file_mb
    from airflow_tfexp.plugins.catalog import run_model_dirs
    from airflow_tfexp.plugins.run_data import read_run_data

    max_bytes, roots = int(ui_max_file_mb() * 2**20), model_dir_roots()
    return [
        read_run_data(model_dir, writers, max_bytes=max_bytes, roots=roots)
        for model_dir, writers in run_model_dirs(dag_id, run_id).items()
    ]


def run_view(datas: list[Any]) -> list[dict[str, Any]]:
    """Each model dir's RunData with its charts: at most MAX_METRICS metrics (charts and table
    columns), MAX_SERIES series a chart, 2,000 points a series; what is left out is noted."""
    from airflow_tfexp.plugins.charts import line_chart
    from airflow_tfexp.plugins.downsample import downsample

    models = []
    for data in datas:
        charts, notes = [], []
        if data.training:
            loss = {tag: pts for tag, pts in data.training.items() if "loss" in tag}
            shown = dict(sorted((loss or data.training).items())[:MAX_SERIES])
            if len(shown) < len(loss or data.training):
                notes.append(
                    f"training: {len(loss or data.training):,} series, the first {MAX_SERIES} "
                    "drawn (all are in the JSON API)"
                )
            charts.append(line_chart("training loss", shown, "train-point"))
        metrics = data.metric_names[:MAX_METRICS]
        if len(metrics) < len(data.metric_names):
            notes.append(
                f"evaluation: {len(data.metric_names):,} metrics, the first {MAX_METRICS} shown "
                "(all are in the JSON API)"
            )
        evaluators = dict(list(data.evaluations.items())[:MAX_SERIES])
        for metric in metrics:
            series = {
                evaluator: downsample(
                    [
                        (r["global_step"], r["metrics"][metric])
                        for r in records
                        if metric in r["metrics"]
                    ]
                )
                for evaluator, records in evaluators.items()
            }
            charts.append(line_chart(f"evaluation {metric}", series, "eval-point"))
        models.append(
            {
                "data": data,
                "charts": charts,
                "metrics": metrics,
                "notes": notes,
                "anchor": _trial_anchor(data.model_dir),
                "sweep_chart": _sweep_chart(data) if data.sweep else None,
            }
        )
    return models


def _sweep_chart(data: Any) -> str | None:
    """The sweep's chart; a snapshot it cannot draw is a problem on the page, not an error."""
    from airflow_tfexp.plugins.sweep_view import sweep_chart

    try:
        return sweep_chart(data.sweep)
    except Exception as err:  # noqa: BLE001 - whatever a hostile snapshot does, reported
        data.problems.append(f"sweep chart: {type(err).__name__}: {err}")
        return None


def _trial_anchor(model_dir: str) -> str | None:
    """`trial-<n>` for a sweep trial's model dir (`.../trials/<n>`): the sweep table links to it."""
    import re

    match = re.search(r"/trials/(\d+)/?$", model_dir)
    return f"trial-{match.group(1)}" if match else None


def templates() -> Any:
    """The pages' Jinja environment (autoescaped; the templates are the package's own)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape()
    )


def render_page(env: Any, name: str, **values: Any) -> str:
    return env.get_template(name).render(root=f"{MOUNT}/", max_rows=MAX_TABLE_ROWS, **values)


def create_app() -> FastAPI:
    from airflow.api_fastapi.core_api.security import get_user

    env = templates()
    app = FastAPI(
        title="airflow-tfexp Experiments", docs_url=None, redoc_url=None, openapi_url=None
    )
    User = Depends(get_user)

    def page(name: str, **values: Any) -> HTMLResponse:
        return HTMLResponse(render_page(env, name, **values))

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

    @app.get("/dags/{dag_id}/trends", response_class=HTMLResponse)
    def trends_page(
        dag_id: str, metrics: str | None = None, limit: int = RUNS_LIMIT, user: Any = User
    ) -> HTMLResponse:
        from airflow_tfexp.plugins.trends import chosen_metrics, read_trends, trend_charts

        _check_dag_access(user, dag_id, task_instances=True)
        trends = read_trends(dag_id, limit)
        chosen = chosen_metrics(trends["metrics"], metrics)
        return page(
            "trends.html",
            dag_id=dag_id,
            trends=trends,
            chosen=chosen,
            charts=trend_charts(trends, chosen),
        )

    @app.get("/api/dags/{dag_id}/trends")
    def api_trends(dag_id: str, limit: int = RUNS_LIMIT, user: Any = User) -> dict[str, Any]:
        from airflow_tfexp.plugins.run_data import json_safe
        from airflow_tfexp.plugins.trends import read_trends

        _check_dag_access(user, dag_id, task_instances=True)
        return json_safe(read_trends(dag_id, limit))

    @app.get("/dags/{dag_id}/runs/{run_id}", response_class=HTMLResponse)
    def run_page(dag_id: str, run_id: str, user: Any = User) -> HTMLResponse:
        _check_dag_access(user, dag_id, task_instances=True)
        models = run_view(_read_models(dag_id, run_id))
        return page("run.html", dag_id=dag_id, run_id=run_id, models=models)

    @app.get("/api/dags")
    def api_dags(user: Any = User) -> dict[str, Any]:
        from airflow_tfexp.plugins.catalog import experiment_dag_ids

        return {"dag_ids": experiment_dag_ids(_readable_dag_ids(user))}

    @app.get("/api/dags/{dag_id}/runs/{run_id}")
    def api_run(dag_id: str, run_id: str, user: Any = User) -> dict[str, Any]:
        _check_dag_access(user, dag_id, task_instances=True)
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "models": [data.as_dict() for data in _read_models(dag_id, run_id)],
        }

    return app
