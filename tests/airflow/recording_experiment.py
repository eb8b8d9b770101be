"""An experiment_fn that records the params it received (to check what a run's conf reaches),
and functions that leave a file behind if anything ever calls them."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.experiment.tiny_experiment import experiment_fn as tiny_experiment_fn

RECEIVED = "received-params.json"


def experiment_fn(run_config: Any, params: dict[str, Any] | None) -> Any:
    os.makedirs(run_config.model_dir, exist_ok=True)
    with open(os.path.join(run_config.model_dir, RECEIVED), "w") as handle:
        json.dump(params, handle, default=str)
    return tiny_experiment_fn(run_config, params)


def leave_proof(*args: Any, **kwargs: Any) -> Any:
    """What an attacker's conf would like the provider to import and call."""
    with open(os.environ["TFEXP_TEST_PROOF"], "w") as handle:
        handle.write("called")
    raise RuntimeError("the attacker's function ran")
