"""A real Airflow for end-to-end tests: `airflow standalone` (scheduler, triggerer,
dag-processor, api-server) with LocalExecutor + EdgeExecutor, and an `airflow edge worker`
serving queue `gpu`, all on their own home, SQLite DB and free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

BIN = os.path.dirname(sys.executable)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


class AirflowCluster:
    """`start()`: standalone plus an edge worker. `start_components()`: scheduler, triggerer,
    dag-processor and api-server as separate processes (LocalExecutor), so one of them, the
    triggerer say, can be restarted on its own."""

    def __init__(self, home: str, dags_folder: str, executor: str | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.token: str | None = None  # sent as a Bearer token when set (see `login`)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        self.env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": ROOT,
                "AIRFLOW_HOME": home,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/metadata.db",  # not the default: the edge CLI insists
                "AIRFLOW__CORE__DAGS_FOLDER": dags_folder,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": executor
                or "LocalExecutor,airflow.providers.edge3.executors.EdgeExecutor",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{self.port}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API_AUTH__JWT_SECRET": "tfexp-e2e-" + "0" * 54,
                # An edge worker's token is valid for jwt_leeway seconds (30): on two cores
                # shared with the rest of the suite, a request can wait longer than that and
                # be refused with 403, and the job it carried is lost.
                "AIRFLOW__API_AUTH__JWT_LEEWAY": "300",
                "AIRFLOW__EDGE__API_ENABLED": "True",
                "AIRFLOW__EDGE__API_URL": f"http://localhost:{self.port}/edge_worker/v1/rpcapi",
                # edge3 fetches jobs in overlapping requests when one takes longer than the poll interval, and
                # SQLite cannot lock the row: a longer interval keeps one job from being fetched twice.
                "AIRFLOW__EDGE__JOB_POLL_INTERVAL": "3",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
                "TF_CPP_MIN_LOG_LEVEL": "2",
            }
        )

    def _start(self, name: str, *args: str) -> None:
        log = open(os.path.join(self.home, f"{name}.log"), "w")
        self.processes[name] = subprocess.Popen(
            [os.path.join(BIN, "airflow"), *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self, timeout: float = 120) -> None:
        os.makedirs(self.home, exist_ok=True)
        self._start("standalone", "standalone")
        self.wait_for(lambda: self.healthy(), timeout, "a healthy Airflow")
        self._start("edge-worker", "edge", "worker", "-q", "gpu", "-c", "1")
        self.wait_for(lambda: self.edge_worker_registered(), timeout, "the edge worker")

    COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")

    def start_components(self, timeout: float = 180) -> None:
        os.makedirs(self.home, exist_ok=True)
        subprocess.run(
            [os.path.join(BIN, "airflow"), "db", "migrate"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        for name in self.COMPONENTS:
            self._start(name, name)
        self.wait_for(lambda: self.healthy(), timeout, "a healthy Airflow")

    def restart(self, name: str, timeout: float = 120) -> None:
        """Stop one component (SIGTERM, then SIGKILL) and start it again."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        os.replace(
            os.path.join(self.home, f"{name}.log"), os.path.join(self.home, f"{name}.before.log")
        )
        self._start(name, name)
        self.wait_for(lambda: self.healthy(), timeout, f"a healthy Airflow after restarting {name}")

    def log(self, name: str) -> str:
        with open(os.path.join(self.home, f"{name}.log")) as handle:
            return handle.read()

    def stop(self) -> None:
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(2)
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the edge worker ignores SIGTERM for long
            except ProcessLookupError:
                pass
            process.wait(timeout=30)

    def request(
        self, method: str, url_path: str, body: Any = None, token: str | None = None
    ) -> Any:
        """A JSON request to the API server (`url_path` from the root), with a Bearer token."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        token = token or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"http://localhost:{self.port}{url_path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self.request(method, f"/api/v2{path}", body)

    def login(self, username: str, password: str) -> str:
        """A JWT for this user (SimpleAuthManager's token endpoint)."""
        return self.request("POST", "/auth/token", {"username": username, "password": password})[
            "access_token"
        ]

    def healthy(self) -> bool:
        try:
            health = self.api("GET", "/monitor/health")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return all(
            health.get(p, {}).get("status") == "healthy"
            for p in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def edge_worker_registered(self) -> bool:
        out = subprocess.run(
            [os.path.join(BIN, "airflow"), "edge", "list-workers", "--output", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.returncode == 0 and '"gpu"' in out.stdout

    @staticmethod
    def wait_for(predicate: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")

    def trigger(self, dag_id: str, conf: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        """Unpause, trigger through the REST API and wait for the run to finish."""
        return self.wait_for_run(dag_id, self.start_run(dag_id, conf), timeout)

    def start_run(self, dag_id: str, conf: dict[str, Any], logical_date: str | None = None) -> str:
        """Unpause and trigger through the REST API; the run's id."""
        self.wait_for(lambda: self._dag_exists(dag_id), 120, f"DAG {dag_id} to be parsed")
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        body = {"logical_date": logical_date, "conf": conf}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
        """The run once it succeeded or failed."""

        def finished() -> dict[str, Any] | None:
            try:
                run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            except (TimeoutError, urllib.error.URLError, ConnectionError):
                return None  # an api-server busy on two shared cores: ask again
            return run if run["state"] in ("success", "failed") else None

        try:
            return self.wait_for(finished, timeout, f"run {run_id} of {dag_id}", interval=2)
        except TimeoutError as error:
            states = {
                (t["task_id"], t["map_index"]): (t["state"], t["try_number"])
                for t in self.task_instances(dag_id, run_id)
            }
            raise TimeoutError(f"{error}; its tasks (state, try): {states}") from None

    def _dag_exists(self, dag_id: str) -> bool:
        try:
            self.api("GET", f"/dags/{dag_id}")
            return True
        except urllib.error.HTTPError:
            return False

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        from urllib.parse import quote

        path = f"/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/logs/{try_number}?full_content=true&map_index={map_index}"
        content = self.api("GET", path)["content"]
        return "\n".join(e.get("event", "") if isinstance(e, dict) else str(e) for e in content)

    def all_logs(
        self, dag_id: str, run_id: str, task_id: str, tries: int, map_index: int = -1
    ) -> str:
        """The logs of every try that has one, joined."""
        logs = []
        for try_number in range(1, tries + 1):
            try:
                logs.append(self.task_log(dag_id, run_id, task_id, try_number, map_index))
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise
        return "\n".join(logs)
