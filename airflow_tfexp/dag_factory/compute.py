"""Compute placement: a stage's `compute` section -> operator arguments.

Celery and Edge workers are chosen by `queue`; KubernetesExecutor pods by an `executor_config`
pod override (GPU limits, node selector, tolerations). Executors must be configured in Airflow.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_tfexp.dag_factory.spec import ComputeSpec

KUBERNETES_EXECUTORS = ("KubernetesExecutor", "CeleryKubernetesExecutor", "LocalKubernetesExecutor")


def configured_executors() -> list[str]:
    """Names under which the configured executors can be addressed (alias, class, path)."""
    from airflow.sdk import conf

    names = []
    for entry in (conf.get("core", "executor", fallback="LocalExecutor") or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        alias, _, path = entry.partition(":") if ":" in entry else ("", "", entry)
        names += [n for n in (alias, path, path.rsplit(".", 1)[-1]) if n]
    return names


def check_executor(stage: str, compute: ComputeSpec, configured: list[str]) -> str | None:
    """A problem with the stage's executor, or None."""
    if compute.executor is None or compute.executor in configured:
        return None
    return (
        f"compute.{stage}.executor: {compute.executor!r} is not configured in Airflow "
        f"([core] executor allows {sorted(set(configured))})"
    )


def operator_arguments(compute: dict[str, Any] | None) -> dict[str, Any]:
    """BaseOperator arguments that put a stage where its compute section (as planned) says."""
    if not compute:
        return {}
    arguments: dict[str, Any] = {}
    for key in ("executor", "queue", "pool"):
        if compute.get(key):
            arguments[key] = compute[key]
    if compute.get("execution_timeout_secs"):
        arguments["execution_timeout"] = datetime.timedelta(
            seconds=compute["execution_timeout_secs"]
        )
    executor = compute.get("executor") or ""
    if executor.rsplit(".", 1)[-1] in KUBERNETES_EXECUTORS:
        arguments["executor_config"] = {"pod_override": pod_override(compute)}
    return arguments


def pod_override(compute: dict[str, Any]) -> Any:
    """A V1Pod for KubernetesExecutor: the `base` container's GPU and memory limits, node
    selector and tolerations (kubernetes client models; imported only when needed)."""
    from kubernetes.client import models as k8s

    limits: dict[str, str] = {}
    if compute.get("gpus"):
        limits["nvidia.com/gpu"] = str(compute["gpus"])
    if compute.get("memory"):
        limits["memory"] = compute["memory"]
    resources = k8s.V1ResourceRequirements(limits=limits or None, requests=dict(limits) or None)
    return k8s.V1Pod(
        spec=k8s.V1PodSpec(
            containers=[k8s.V1Container(name="base", resources=resources)],
            node_selector=compute.get("node_selector") or None,
            tolerations=[k8s.V1Toleration(**t) for t in compute.get("tolerations") or []] or None,
        )
    )
