"""A cache of validated plans, so that parsing an unchanged YAML config costs no validation.

The key covers everything the plan depends on: the config file's bytes, the configured
executors (they are validated against) and the code of every module validation and planning
use (`PLAN_MODULES`; a test checks that the list is complete). Entries are written whole
(temporary file + rename); an unreadable entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

CACHE_ENV = "TFEXP_FACTORY_CACHE"
# The package's modules that turn a config into a plan: a changed one changes every key.
PLAN_MODULES = (
    "airflow_tfexp._airflow",
    "airflow_tfexp._approval_rules",
    "airflow_tfexp.dag_factory.cache",
    "airflow_tfexp.dag_factory.compute",
    "airflow_tfexp.dag_factory.config_errors",
    "airflow_tfexp.dag_factory.durations",
    "airflow_tfexp.dag_factory.errors",
    "airflow_tfexp.dag_factory.params",
    "airflow_tfexp.dag_factory.plan",
    "airflow_tfexp.dag_factory.spec",
    "airflow_tfexp.dag_factory.stages",
    "airflow_tfexp.dag_factory.tuning",
    "airflow_tfexp.experiment._validation",
    "airflow_tfexp.experiment.arguments",
    "airflow_tfexp.experiment.evaluation.results",
    "airflow_tfexp.experiment.experiment_fn",
    "airflow_tfexp.experiment.storage.files",
    "airflow_tfexp.experiment.storage.fs",
    "airflow_tfexp.experiment.storage.locations",
    "airflow_tfexp.experiment.tuning.space",
    "airflow_tfexp.experiment.tuning.study",
    "airflow_tfexp.launchers.spec",
    "airflow_tfexp.names",
)
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_file(module: str) -> str:
    """The source file of one of the package's modules, found without importing it."""
    parts = module.split(".")[1:]
    path = os.path.join(_PACKAGE_ROOT, *parts)
    return os.path.join(path, "__init__.py") if os.path.isdir(path) else f"{path}.py"


def cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "airflow-tfexp", "factory"
    )


def cache_key(source: bytes, executors: list[str]) -> str:
    from airflow_tfexp import __version__

    digest = hashlib.sha256(source)
    digest.update(f"\0{__version__}\0{','.join(executors)}".encode())
    for name in PLAN_MODULES:  # a changed factory (an upgrade, a checkout) changes every key
        stat = os.stat(module_file(name))
        digest.update(f"\0{name}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    return digest.hexdigest()


def load_plan(key: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(cache_dir(), f"{key}.json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def store_plan(key: str, plan: dict[str, Any]) -> None:
    """Best effort: a plan that is not plain JSON, or a read-only disk, just means no cache."""
    try:
        text = json.dumps(plan, sort_keys=True)
        directory = cache_dir()
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, os.path.join(directory, f"{key}.json"))
    except (OSError, TypeError, ValueError):
        return
