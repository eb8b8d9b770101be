"""`make demo`'s script, on its own Airflow home: the factory DAG runs and the table is printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_the_factory_dag_and_prints_the_evaluation_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path / "home"), DEMO_MODEL_DIR=str(tmp_path / "digits"))
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "DAG tfexp_digits_factory: success" in out.stdout
    rows = re.findall(r"^\s+(\d+)\s+(\d\.\d{4})\s+(\d\.\d{4})$", out.stdout, re.MULTILINE)
    assert [int(step) for step, _, _ in rows] == [0, 200, 400, 600, 800, 1000]
    assert float(rows[-1][2]) > 0.9
    assert re.search(r"^export best\s+\S+/export/best/\d{10}$", out.stdout, re.MULTILINE)
    assert "make airflow" in out.stdout
