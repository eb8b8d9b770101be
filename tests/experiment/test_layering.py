"""The engine imports no Airflow, and importing it (or the example) loads no TensorFlow."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "airflow_tfexp"


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_engine_never_imports_airflow():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] == "airflow"
        )
        for path in (PACKAGE / "experiment").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_engine_and_the_example_loads_no_tensorflow():
    code = (
        "import sys, airflow_tfexp.experiment, airflow_tfexp.examples.digits, airflow_tfexp.experiment.cli;"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'google.cloud') if m in sys.modules);"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
