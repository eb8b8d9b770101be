"""Random and mutated factory configs (hypothesis): every outcome is a DAG or an
ExperimentConfigError whose every problem names a field; never another exception, never a hang."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_tfexp.dag_factory import ExperimentConfigError, build_experiment_dags

pytestmark = pytest.mark.timeout(600)
TINY = "tests.experiment.tiny_experiment"
MINIMAL = {
    "dag_id": "tfexp_fuzz",
    "model_dir": "/tmp/tfexp-fuzz",
    "model_fn": f"{TINY}:model_fn",
    "train_input_fn": f"{TINY}:train_input_fn",
    "eval_input_fn": f"{TINY}:eval_input_fn",
    "train_steps": 100,
}
FULL = {
    **MINIMAL,
    "description": "every section",
    "schedule": "@daily",
    "tags": ["fuzz"],
    "schedule_mode": "train_and_evaluate",
    "params": {"hidden_units": 8},
    "eval_steps": None,
    "run_config": {"save_checkpoints_steps": 20, "keep_checkpoint_max": None},
    "exporters": [
        {"type": "latest", "exports_to_keep": 2},
        {"type": "best", "metric": "accuracy", "mode": "max", "exports_to_keep": 1},
    ],
    "evaluation": {"every_checkpoint": True, "poll_interval": 2, "wait": "reschedule"},
    "warm_start_from": "none",
    "distribution": {
        "strategy": "parameter_server",
        "num_workers": 2,
        "num_ps": 1,
        "launcher": "ray",
    },
}
EVENT_DRIVEN = {
    **MINIMAL,
    "schedule_mode": "event_driven",
    "exporters": [{"type": "latest"}],
    "publish_dir": "/tmp/tfexp-pub",
    "blessing": {"metric": "loss", "mode": "min"},
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def paths(config: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested config (list items by index)."""
    found = []
    items = config.items() if isinstance(config, dict) else enumerate(config)
    for key, value in items:
        found.append((*prefix, key))
        if isinstance(value, dict | list):
            found += paths(value, (*prefix, key))
    return found


@st.composite
def mutated_configs(draw: Any) -> Any:
    config = copy.deepcopy(draw(st.sampled_from([MINIMAL, FULL, EVENT_DRIVEN])))
    for _ in range(draw(st.integers(1, 4))):
        candidates = paths(config)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["delete", "replace", "typo", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "typo" and isinstance(parent, dict):
            parent[f"{path[-1]}x"] = parent.pop(path[-1])
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return config


random_configs = st.dictionaries(st.text(max_size=10), json_values, max_size=6) | json_values

# A problem is "<field path>: <what is wrong>", e.g. "run_config.keep_checkpoint_max: ..." or
# "'a key': unknown key" (keys that are not plain names are quoted); a whole-config check names
# the fields it relates ("missing ['model_fn']: give experiment_fn, or ..."); a config that is
# not a mapping has one problem saying so.
PROBLEM = re.compile(r"^(?P<field>[\w.\-]+|'[^']*'|\"[^\"]*\"|\(config\))(\.\S+)?: .+", re.S)
FIELD_NAMES = {
    key for base in (FULL, EVENT_DRIVEN) for *_, key in paths(base) if isinstance(key, str)
}


def names_a_field(problem: str) -> bool:
    from airflow_tfexp.dag_factory.spec import ExperimentSpec

    known = FIELD_NAMES | set(ExperimentSpec.model_fields)
    return bool(PROBLEM.match(problem)) or any(
        re.search(rf"\b{re.escape(name)}\b", problem) for name in known
    )


def check_outcome(config: Any) -> str:
    try:
        dags = build_experiment_dags(config, "fuzz.yaml")
    except ExperimentConfigError as err:
        assert err.problems, err
        for problem in err.problems:
            if problem.startswith("expected a mapping of settings, got "):
                assert not isinstance(config, dict)
                continue
            assert names_a_field(problem), f"problem names no field: {problem!r}"
        return "error"
    assert dags and all(dag.dag_id for dag in dags.values())
    return "dag"


@settings(
    max_examples=500,
    deadline=5000,  # a hang (or a parse that slow) fails the example
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(mutated_configs())
def test_mutated_configs_become_a_dag_or_an_error_naming_fields(config):
    event(check_outcome(config))  # --hypothesis-show-statistics shows how many of each


@settings(max_examples=200, deadline=5000, derandomize=True)
@given(random_configs)
def test_random_configs_become_a_dag_or_an_error_naming_fields(config):
    assert check_outcome(config) == "error"  # never a DAG without a model_fn and a model_dir


def test_the_unmutated_bases_build():
    for base in (MINIMAL, FULL, EVENT_DRIVEN):
        assert check_outcome(copy.deepcopy(base)) == "dag"
