"""`make demo`: run the digits experiment as a factory-built DAG on the embedded default.

Its own Airflow home (SQLite metadata DB) under the repository, the project's dags/ folder, a
local model dir; then a table of the evaluations and the export paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAG_ID = "tfexp_digits_factory"


def main() -> int:
    home = os.environ.setdefault("AIRFLOW_HOME", os.path.join(ROOT, ".airflow"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(ROOT, "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    model_dir = os.path.abspath(
        os.environ.get("DEMO_MODEL_DIR") or os.path.join(ROOT, "demo", "digits_factory")
    )
    os.makedirs(home, exist_ok=True)
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print("DAG import errors:", bag.import_errors, file=sys.stderr)
        return 1
    started = time.monotonic()
    run = bag.get_dag(DAG_ID).test(run_conf={"model_dir": model_dir})
    elapsed = time.monotonic() - started
    return report(run.state, model_dir, elapsed)


def report(state: str, model_dir: str, elapsed: float) -> int:
    from airflow_tfexp.experiment.evaluation.results import read_results
    from airflow_tfexp.experiment.export.export_dirs import list_exports
    from airflow_tfexp.experiment.storage.fs import join

    print()
    print(f"DAG {DAG_ID}: {state} in {elapsed:.0f} s; model dir {model_dir}")
    print()
    print(f"{'step':>6}  {'loss':>8}  {'accuracy':>8}")
    for record in read_results(model_dir, "continuous"):
        metrics = record["metrics"]
        print(f"{record['global_step']:>6}  {metrics['loss']:>8.4f}  {metrics['accuracy']:>8.4f}")
    print()
    for name in ("latest", "best"):
        exports = list_exports(join(model_dir, "export", name))
        print(f"export {name:<6} {exports[-1] if exports else '(none)'}")
    print()
    print("See the run in the Airflow UI: make airflow, then open http://localhost:8080")
    print("(Browse > Experiments, or http://localhost:8080/tfexp/, shows its plots and tables)")
    print(
        f"(user admin; its password is in {os.environ['AIRFLOW_HOME']}/simple_auth_manager_passwords.json.generated)"
    )
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
