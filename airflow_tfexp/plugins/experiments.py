"""The Airflow plugin: mounts the Experiments pages and puts them in the UI's navigation.

Declared under the `airflow.plugins` entry point. The FastAPI app is built lazily by the API
server (importing this module costs nothing at DAG parse time).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_tfexp.links import ExperimentMetricsLink, ModelDirLink, TensorBoardLink


class _LazyApp:
    """Build the FastAPI app on first use: the scheduler and DAG processor load plugins too."""

    def __init__(self) -> None:
        self._app = None

    def __call__(self, scope, receive, send):  # an ASGI app
        if self._app is None:
            from airflow_tfexp.plugins.app import create_app

            self._app = create_app()
        return self._app(scope, receive, send)


class TfexpPlugin(AirflowPlugin):
    name = "airflow_tfexp"
    fastapi_apps = [{"app": _LazyApp(), "url_prefix": "/tfexp", "name": "Experiments"}]
    external_views = [
        {
            "name": "Experiments",
            "href": "tfexp/",
            "url_route": "tfexp",
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "Experiment metrics",
            "href": "tfexp/dags/{DAG_ID}/runs/{RUN_ID}",
            "url_route": "tfexp_run",
            "destination": "dag_run",
        },
        {
            "name": "Experiment trends",
            "href": "tfexp/dags/{DAG_ID}/trends",
            "url_route": "tfexp_trends",
            "destination": "dag",
        },
    ]
    operator_extra_links = [ExperimentMetricsLink(), ModelDirLink(), TensorBoardLink()]
