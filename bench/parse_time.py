"""Parse time of a factory DAG file / parse time of a trivial one-task DAG file, same run.

Each parse runs in a child forked from a process that has Airflow imported, as the DAG
processor does; the two files alternate, and the medians are compared. Target: ratio <= 1.5,
and no TensorFlow in sys.modules after parsing the factory DAG.

    .venv/bin/python bench/parse_time.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import compileall
import multiprocessing
import os
import statistics
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIVIAL = textwrap.dedent(
    """
    from datetime import datetime
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.empty import EmptyOperator

    with DAG("trivial", schedule=None, start_date=datetime(2026, 1, 1)):
        EmptyOperator(task_id="only")
    """
)


def _parse(path: str, queue: multiprocessing.Queue) -> None:
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=path)
    elapsed = time.perf_counter() - started
    heavy = sorted(
        m for m in ("tensorflow", "keras", "google.cloud.storage", "kubernetes") if m in sys.modules
    )
    queue.put((elapsed, len(bag.dag_ids), dict(bag.import_errors), heavy))


def measure(path: str) -> tuple[float, int, dict, list]:
    queue: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_parse, args=(path, queue))
    child.start()
    result = queue.get(timeout=120)
    child.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tfexp-bench-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    import airflow.dag_processing.dagbag  # noqa: F401 - the DAG processor has Airflow loaded
    import airflow.sdk  # noqa: F401

    # An installed package has its bytecode compiled (pip does it); an editable checkout under
    # PYTHONDONTWRITEBYTECODE has none, which would charge compilation to the factory alone.
    compileall.compile_dir(os.path.join(ROOT, "airflow_tfexp"), quiet=1)

    folder = tempfile.mkdtemp(prefix="tfexp-bench-dags-")
    trivial = os.path.join(folder, "trivial_dag.py")
    with open(trivial, "w") as handle:
        handle.write(TRIVIAL)
    factory = os.path.join(ROOT, "dags", "tfexp_factory.py")
    times: dict[str, list[float]] = {"trivial": [], "factory": []}
    heavy_after_factory: list[str] = []
    for _ in range(args.rounds):
        for name, path in (("trivial", trivial), ("factory", factory)):
            elapsed, dags, errors, heavy = measure(path)
            if errors or not dags:
                print(f"{name}: parse failed: {errors}", file=sys.stderr)
                return 1
            times[name].append(elapsed)
            if name == "factory":
                heavy_after_factory = heavy
    trivial_ms, factory_ms = (statistics.median(times[n]) * 1000 for n in ("trivial", "factory"))
    ratio = factory_ms / trivial_ms
    print(f"trivial one-task DAG file: median {trivial_ms:.1f} ms over {args.rounds} parses")
    print(f"factory DAG file (dags/tfexp_factory.py, 1 YAML): median {factory_ms:.1f} ms")
    print(f"ratio factory / trivial: {ratio:.2f} (target <= 1.5)")
    print(f"heavy modules after parsing the factory DAG: {heavy_after_factory or 'none'}")
    return 0 if ratio <= 1.5 and not heavy_after_factory else 2


if __name__ == "__main__":
    sys.exit(main())
