"""Test-wide settings: quiet TensorFlow, artifacts folder, and the tests dir on PYTHONPATH for
subprocesses (they import tests.experiment.tiny_experiment)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
os.environ.pop("TF_CONFIG", None)

# Airflow reads its configuration when first imported, so the test Airflow is set up here:
# its own home and SQLite metadata DB, the project's dags/ folder, no examples.
# The DAGs folder holds the project's example DAGs plus the test DAGs of tests/airflow/dag_files
# (dag.test() needs a DAG to come from a file in the DAGs folder).
AIRFLOW_HOME = tempfile.mkdtemp(prefix="tfexp-airflow-home-")
DAGS_FOLDER = os.path.join(AIRFLOW_HOME, "dags")
shutil.copytree(
    os.path.join(ROOT, "dags"), DAGS_FOLDER, ignore=shutil.ignore_patterns("__pycache__")
)
for name in os.listdir(os.path.join(ROOT, "tests", "airflow", "dag_files")):
    if name.endswith(".py"):
        shutil.copy(os.path.join(ROOT, "tests", "airflow", "dag_files", name), DAGS_FOLDER)
os.environ.update(
    {
        "AIRFLOW_HOME": AIRFLOW_HOME,
        "AIRFLOW__CORE__DAGS_FOLDER": DAGS_FOLDER,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS": "True",
        # where gs:// model dirs are staged for TensorFlow
        "TFEXP_STAGING_DIR": os.path.join(AIRFLOW_HOME, "staging"),
        "TFEXP_FACTORY_CACHE": os.path.join(AIRFLOW_HOME, "factory-cache"),
        # google-auth must never probe the cloud metadata server from a test machine
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GCE_METADATA_IP": "127.0.0.1:9",
    }
)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """A real GCS JSON-API server for the session; STORAGE_EMULATOR_HOST points at it."""
    from tests.gcs_emulator import Emulator

    emulator = Emulator(str(tmp_path_factory.mktemp("gcs-emulator")))
    emulator.start()
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
    yield emulator
    emulator.stop()
    os.environ.pop("STORAGE_EMULATOR_HOST", None)


@pytest.fixture(params=["local", "gcs"])
def model_dir(request, tmp_path):
    """The same test on a local model dir and on a gs:// one (a fresh prefix each time)."""
    if request.param == "local":
        return str(tmp_path / "model")
    request.getfixturevalue("gcs_emulator")
    return (
        f"gs://tfexp-test/{request.node.name.replace('[', '-').rstrip(']')}-{uuid.uuid4().hex[:8]}"
    )


# Tests that share something run one after another on one xdist worker: the tests of a module
# whose module-scoped fixture starts a whole Airflow (it would start once per worker otherwise),
# and every test that starts Ray (one Ray job at a time on two cores; two starve each other into
# killing their workers). Ray-heavy and cluster groups are queued first: they are the longest.
XDIST_GROUPS = {
    "ray": (
        "tests/launchers/test_ray_parameter_server.py",
        "tests/launchers/test_ray_training.py",
        "tests/launchers/test_ray_bad_input.py",
        "tests/airflow/test_ray_example_dag.py",
    ),
    "edge-cluster": ("tests/e2e/test_edge_executor.py",),
    "ui-cluster": ("tests/ui/test_experiments_page.py",),
    "security-cluster": ("tests/security/test_attacks.py",),
}
_GROUP_OF_FILE = {path: group for group, paths in XDIST_GROUPS.items() for path in paths}


def pytest_xdist_make_scheduler(config, log):
    """Each group of XDIST_GROUPS goes to one worker as one unit, every other test alone.
    (`--dist loadgroup` no longer groups under pytest 9.2: it rewrites a node id field pytest
    stopped reading, pytest-dev/pytest-xdist#1386.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FileGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _GROUP_OF_FILE.get(nodeid.split("::", 1)[0], nodeid)

    return FileGroupScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """On two cores the Ray tests get the CPU first (the processes a test starts inherit its
    priority): they are the suite's longest lane, and a starved Ray kills its own workers."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        ray = _GROUP_OF_FILE.get(os.path.relpath(str(item.path), ROOT)) == "ray"
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 0 if ray else 8)
        except PermissionError:  # only root may raise a priority again: keep this one
            pass


def pytest_collection_modifyitems(config, items):
    """The groups first (the scheduler hands out work in this order), the rest as collected."""
    rank = {group: i for i, group in enumerate(XDIST_GROUPS)}
    items.sort(
        key=lambda item: rank.get(
            _GROUP_OF_FILE.get(os.path.relpath(str(item.path), ROOT), ""), len(rank)
        )
    )


# TFEXP_TEST_CPU_LOG=FILE: one line per test with the CPU seconds it cost (this process and the
# child processes it waited for), to find what makes the suite slow on two cores.
if os.environ.get("TFEXP_TEST_CPU_LOG"):
    import resource

    def _cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        started = _cpu()
        try:
            return (yield)
        finally:
            with open(os.environ["TFEXP_TEST_CPU_LOG"], "a") as log:
                log.write(f"{_cpu() - started:.1f}\t{item.nodeid}\n")
