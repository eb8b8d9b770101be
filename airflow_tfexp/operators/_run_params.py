"""The params a task passes to `experiment_fn`: what the DAG author wrote, with its templates
rendered in a Jinja sandbox; a run's conf values as plain data, never rendered.

A user who may only trigger a DAG chooses its run conf, and Airflow lets conf override params by
default. So a conf value is never a template here (Jinja, even sandboxed, is a language), and the
provider's own params (`tfexp_*`: a factory spec naming the code to import) always come from the
DAG file, whatever the conf says.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Collection
from typing import Any

import jinja2
import jinja2.nativetypes
import jinja2.sandbox

from airflow_tfexp._airflow import asset_events, is_templated
from airflow_tfexp.names import ASSET_EVENTS_PARAM, PROVIDER_PARAM_PREFIX


class SandboxedNativeEnv(jinja2.nativetypes.NativeEnvironment, jinja2.sandbox.SandboxedEnvironment):
    """Renders "{{ 6 * 5 }}" to 30 (a native value) with Jinja's sandbox: no attribute starting
    with "_", no unsafe callables (`cycler.__init__.__globals__.os.system` raises SecurityError)."""


def _sandboxed(template_env: jinja2.Environment) -> SandboxedNativeEnv:
    env = SandboxedNativeEnv(undefined=jinja2.StrictUndefined)
    env.filters.update(template_env.filters)  # ds_add, tojson, user filters: as in template fields
    env.globals.update(template_env.globals)  # user_defined_macros
    return env


def snapshot_params(params: Any) -> dict[str, Any]:
    """The values of a task's params as the DAG file declares them (the DAG's merged with the
    task's own), copied: Airflow writes a run's conf into the task's Param objects when it builds
    the run's context, so they cannot be read back later."""
    return copy.deepcopy(params.dump() if hasattr(params, "dump") else dict(params or {}))


def experiment_params(
    authored: dict[str, Any],
    context: Any,
    template_env: Callable[[], jinja2.Environment],
    log: logging.Logger | Any,
    overridable: Collection[str] | None = None,
) -> dict[str, Any]:
    """The run's params for `experiment_fn`: the `authored` values (`snapshot_params`) with
    templates rendered to native values in the sandbox (with the filters and macros of
    `template_env()`), values the run's conf changed or added as they are (only for keys in
    `overridable`, when given: the others keep the DAG file's value), `tfexp_*` params from
    the DAG file only, and the triggering asset events under "tfexp_asset_events"."""
    env: SandboxedNativeEnv | None = None

    def render(value: Any) -> Any:
        nonlocal env
        if isinstance(value, str) and is_templated(value):
            env = env or _sandboxed(template_env())
            return env.from_string(value).render(**context)
        if isinstance(value, dict):
            return {key: render(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(render(item) for item in value)
        return value

    params: dict[str, Any] = {}
    for key, value in dict(context.get("params") or {}).items():
        if key.startswith(PROVIDER_PARAM_PREFIX):
            if key not in authored or value != authored[key]:
                log.warning("Ignoring the run's value of %r: only the DAG file sets tfexp_*.", key)
        elif key in authored and value == authored[key]:
            params[key] = render(value)
        elif overridable is not None and key not in overridable:
            log.warning(
                "Ignoring the run's value of %r: the DAG does not let a run override it (a "
                "factory config declares what a run may override under `params:`).",
                key,
            )
            if key in authored:
                params[key] = render(authored[key])
        else:
            params[key] = value  # from the run's conf: data
    # the provider's own params: always the DAG file's (conf can neither change nor remove them)
    params.update({k: v for k, v in authored.items() if k.startswith(PROVIDER_PARAM_PREFIX)})
    if context.get("triggering_asset_events"):  # the data that triggered a retraining run
        params[ASSET_EVENTS_PARAM] = asset_events(context)
    return params
