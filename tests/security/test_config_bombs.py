"""A factory config is bounded: an alias bomb, an oversized file and a toleration Kubernetes
would refuse are each one ExperimentConfigError naming what is wrong, before any real work."""

from __future__ import annotations

import os

import pytest
import yaml

from airflow_tfexp.dag_factory import ExperimentConfigError, load_experiment_dag, parse_spec
from tests.airflow.test_factory_config import GOOD


def write(tmp_path, text: str) -> str:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return str(path)


def cache_files() -> list[str]:
    root = os.environ["TFEXP_FACTORY_CACHE"]
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def test_a_yaml_alias_bomb_is_refused_before_validation(tmp_path):
    lols = ", ".join(['"lol"'] * 9)
    levels = [f"l0: &l0 [{lols}]"] + [
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)
    ]
    bomb = yaml.safe_dump(GOOD) + "\n".join(levels) + "\n"
    assert len(bomb) < 2048  # 9**9 strings once expanded
    cached = cache_files()
    with pytest.raises(ExperimentConfigError) as err:
        load_experiment_dag(write(tmp_path, bomb))
    assert "its aliases (*name) stand for more than 1000 nodes once expanded" in str(err.value)
    assert cache_files() == cached  # no plan written for it


def test_a_config_with_a_few_aliases_still_loads(tmp_path):
    text = yaml.safe_dump({**GOOD, "dag_id": "tfexp_aliases"}) + (
        "compute:\n  train: &gpu {queue: gpu, gpus: 1}\n  evaluate: *gpu\n  export: *gpu\n"
    )
    dag = load_experiment_dag(write(tmp_path, text))
    assert dag.dag_id == "tfexp_aliases"


def test_a_config_over_max_config_kb_is_refused_unread(tmp_path, monkeypatch):
    text = yaml.safe_dump({**GOOD, "dag_id": "tfexp_big", "params": {"note": "x" * 3000}})
    path = write(tmp_path, text)
    assert load_experiment_dag(path).dag_id == "tfexp_big"  # under the default 256 KB
    monkeypatch.setenv("AIRFLOW__TFEXP__MAX_CONFIG_KB", "2")
    with pytest.raises(ExperimentConfigError) as err:
        load_experiment_dag(path)
    assert "the file is 3 KB; a config may be at most 2 KB ([tfexp] max_config_kb)" in str(
        err.value
    )


def test_a_toleration_with_an_unknown_key_names_its_field():
    compute = {"train": {"executor": "KubernetesExecutor", "tolerations": [{"keyy": "gpu"}]}}
    with pytest.raises(ExperimentConfigError) as err:
        parse_spec({**GOOD, "compute": compute})
    assert "compute.train.tolerations.0.keyy: unknown key" in str(err.value), str(err.value)
    bad_effect = {"train": {"tolerations": [{"key": "gpu", "effect": "Sometimes"}]}}
    with pytest.raises(ExperimentConfigError) as err:
        parse_spec({**GOOD, "compute": bad_effect})
    assert "compute.train.tolerations.0.effect" in str(err.value), str(err.value)


def test_one_alias_per_item_of_a_long_list_is_refused_too(tmp_path):
    big = ", ".join(["0"] * 2000)
    copies = ", ".join(["*a"] * 999)  # 999 aliases, each standing for 2,001 nodes
    text = yaml.safe_dump({**GOOD, "dag_id": "tfexp_wide"}) + (
        f"params: {{big: &a [{big}], copies: [{copies}]}}\n"
    )
    assert len(text) < 256 * 1024
    with pytest.raises(ExperimentConfigError, match="stand for more than 1000 nodes"):
        load_experiment_dag(write(tmp_path, text))
