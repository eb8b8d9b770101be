"""Spec -> DAG: the only module of the factory that instantiates operators."""

from __future__ import annotations

import os
from typing import Any

from airflow_tfexp.dag_factory import cache
from airflow_tfexp.dag_factory.compute import configured_executors, operator_arguments
from airflow_tfexp.dag_factory.errors import ExperimentConfigError


def plan_config(
    config: Any, source: str, executors: list[str], map_limit: int | None = None
) -> dict[str, Any]:
    """Validate a config (every problem at once) into its plain-JSON DAG plan, for these
    executors and `[core] max_map_length` (`map_limit`; None: Airflow's setting)."""
    from airflow_tfexp._airflow import max_map_length
    from airflow_tfexp.dag_factory.compute import check_executor
    from airflow_tfexp.dag_factory.plan import plan_from_spec
    from airflow_tfexp.dag_factory.spec import parse_spec
    from airflow_tfexp.dag_factory.tuning import check_parallel

    spec = parse_spec(config, source)
    problems = [
        p for stage, c in spec.compute.items() if (p := check_executor(stage, c, executors))
    ]
    too_wide = check_parallel(spec, max_map_length() if map_limit is None else map_limit)
    problems += [too_wide] if too_wide else []
    if problems:
        raise ExperimentConfigError(source, problems)
    return plan_from_spec(spec)


def build_experiment_dag(config: dict[str, Any], source: str = "(dict)") -> Any:
    """Validate `config` (every problem reported at once) and build its DAG (event_driven's
    evaluation DAG is built and registered with the parsed file too)."""
    return dag_from_plan(plan_config(config, source, configured_executors()))


def build_experiment_dags(config: dict[str, Any], source: str = "(dict)") -> dict[str, Any]:
    """Every DAG of a config, `{dag_id: DAG}`: one, or two for event_driven."""
    return dags_from_plan(plan_config(config, source, configured_executors()))


def _operator_class(name: str) -> type:
    if name.endswith("Sensor"):
        import airflow_tfexp.sensors as sensors

        return getattr(sensors, name)
    import airflow_tfexp.operators as operators

    return getattr(operators, name)


def _schedule(planned: Any) -> Any:
    """A planned schedule (plain JSON) -> what DAG(schedule=...) takes."""
    if not isinstance(planned, dict):
        return planned
    if "seconds" in planned:
        import datetime

        return datetime.timedelta(seconds=planned["seconds"])
    from airflow.sdk import Asset

    if "assets" in planned:
        return [Asset(uri=uri) for uri in planned["assets"]]
    from airflow.sdk import AssetWatcher

    from airflow_tfexp.triggers.checkpoint_event import CheckpointEventTrigger

    watched = planned["checkpoints"]
    trigger = CheckpointEventTrigger(
        watched["model_dir"], name=watched["evaluator"], poll_interval=watched["poll_interval"]
    )
    watcher = AssetWatcher(name=f"{watched['name']}_watcher", trigger=trigger)
    return [Asset(name=watched["name"], uri=watched["uri"], watchers=[watcher])]


def _params(declared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The config's `params:` as Airflow Params: the trigger form shows them, and a run whose
    conf fails a schema is refused when it is created (before any task starts)."""
    from airflow.sdk import Param

    return {
        key: Param(d["default"], description=d["description"], **d["schema"])
        for key, d in declared.items()
    }


def _placement(dag_id: str, stage: dict[str, Any], placement: Any) -> dict[str, Any]:
    """The stage's compute arguments; a model the Kubernetes client refuses is a config error
    naming the compute section, not a raw exception from inside the client."""
    try:
        return operator_arguments(placement)
    except Exception as err:  # noqa: BLE001 - whatever the client raises, reported by field
        raise ExperimentConfigError(
            f"(the DAG {dag_id})", [f"compute.{stage['compute']}: {type(err).__name__}: {err}"]
        ) from err


def _build_dag(settings: dict[str, Any], stages: list[dict], compute: dict[str, Any]) -> Any:
    import datetime

    from airflow.sdk import DAG

    settings = dict(settings)
    settings["schedule"] = _schedule(settings["schedule"])
    settings["start_date"] = datetime.datetime.fromisoformat(settings["start_date"])
    settings["params"] = _params(settings.get("params") or {})
    dag = DAG(**settings)
    tasks: dict[str, Any] = {}
    with dag:  # also registers the DAG with the file being parsed (companions included)
        for stage in stages:
            cls = _operator_class(stage["operator"])
            placement = compute.get(stage["compute"]) if stage["compute"] else None
            kwargs = {**stage["arguments"], **_placement(settings["dag_id"], stage, placement)}
            for argument, (task_id, key) in stage.get("xcom_arguments", {}).items():
                kwargs[argument] = tasks[task_id].output[key]
            if stage["expand_from"]:
                task = cls.partial(task_id=stage["task_id"], **kwargs).expand(
                    **{
                        stage.get("expand_arg", "checkpoint_path"): tasks[
                            stage["expand_from"]
                        ].output
                    }
                )
            else:
                task = cls(task_id=stage["task_id"], **kwargs)
            for upstream in stage["upstream"]:
                tasks[upstream] >> task
            tasks[stage["task_id"]] = task
    return dag


def dags_from_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """Every DAG of a plan: the experiment's, then its companions (event_driven's evaluation)."""
    dags = [_build_dag(plan["dag"], plan["stages"], plan["compute"])]
    dags += [_build_dag(c["dag"], c["stages"], plan["compute"]) for c in plan.get("companions", [])]
    return {dag.dag_id: dag for dag in dags}


def dag_from_plan(plan: dict[str, Any]) -> Any:
    """The experiment's DAG (its companions are built and registered too)."""
    return next(iter(dags_from_plan(plan).values()))


MAX_ALIAS_EXPANSIONS = 1000


def alias_expansions(source: bytes, loader: Any, limit: int = MAX_ALIAS_EXPANSIONS) -> int:
    """How many nodes the aliases of a YAML document stand for once expanded (an alias of a
    collection brings all its nodes, and the nodes its own aliases stand for), counted up to
    just past `limit`: a 1 KB "billion laughs" file, or one alias per line of a long list,
    expands to millions of nodes, which validation and the plan would then walk."""
    import yaml

    size: dict[str, int] = {}  # anchor -> nodes of the anchored node, aliases expanded
    open_nodes: list[list[Any]] = [[None, 0]]  # [anchor, nodes inside] per open collection
    expanded = 0
    for event in yaml.parse(source, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            nodes = size.get(event.anchor, 1)
            expanded += nodes
            open_nodes[-1][1] += nodes
        elif isinstance(event, yaml.ScalarEvent):
            open_nodes[-1][1] += 1
            if event.anchor:
                size[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([event.anchor, 0])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, inside = open_nodes.pop()
            if anchor:
                size[anchor] = 1 + inside
            open_nodes[-1][1] += 1 + inside
        if expanded > limit:
            break
    return expanded


def parse_yaml(source: bytes, path: str) -> Any:
    """A YAML config, loaded safely (no Python tags) and bounded (`alias_expansions`)."""
    import yaml

    # libyaml's safe loader when available: the same rules, several times faster
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        expansions = alias_expansions(source, loader)
        if expansions > MAX_ALIAS_EXPANSIONS:
            raise ExperimentConfigError(
                path,
                [
                    f"its aliases (*name) stand for more than {MAX_ALIAS_EXPANSIONS} nodes once "
                    "expanded: a config is at most that repetitive; write the repeated parts out"
                ],
            )
        return yaml.load(source, Loader=loader)
    except yaml.YAMLError as err:
        raise ExperimentConfigError(path, [f"not valid (safe) YAML: {err}"]) from None


def check_size(source: bytes, path: str) -> None:
    """A config over `[tfexp] max_config_kb` is an error before it is hashed or parsed."""
    from airflow_tfexp._config import max_config_kb

    limit = max_config_kb()
    if len(source) > limit * 1024:
        raise ExperimentConfigError(
            path,
            [
                f"the file is {len(source) / 1024:.0f} KB; a config may be at most {limit} KB "
                "([tfexp] max_config_kb)"
            ],
        )


def load_plan(path: str) -> dict[str, Any]:
    """A YAML file's plan: cached when the file (and the factory) are unchanged."""
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except OSError as err:
        raise ExperimentConfigError(path, [f"cannot read the file: {err}"]) from None
    check_size(source, path)
    from airflow_tfexp._airflow import max_map_length

    executors, map_limit = configured_executors(), max_map_length()
    key = cache.cache_key(source, [*executors, f"max_map_length={map_limit}"])
    plan = cache.load_plan(key)
    if plan is None:
        plan = plan_config(parse_yaml(source, path), path, executors, map_limit)
        cache.store_plan(key, plan)
    return plan


def load_experiment_dag(path: str) -> Any:
    """One DAG from one YAML file: `dag = load_experiment_dag(__file__.replace(".py", ".yaml"))`.

    One DAG file per experiment keeps a broken config to its own import error. The plan of a
    validated config is cached: parsing it again, unchanged, skips YAML and validation. An
    event_driven config's evaluation DAG is registered with the file as well."""
    return dag_from_plan(load_plan(path))


def load_experiment_dags(path_or_glob: str) -> dict[str, Any]:
    """Every experiment in a YAML file, a directory of them, or a glob: `{dag_id: DAG}`.

    All files are validated; if any is invalid, one ExperimentConfigError lists every problem of
    every file (Airflow shows it as this DAG file's import error).
    """
    if os.path.isdir(path_or_glob):  # no glob here: its first pattern costs a regex compile
        paths = sorted(
            os.path.join(path_or_glob, name)
            for name in os.listdir(path_or_glob)
            if name.endswith((".yaml", ".yml"))
        )
    else:
        import glob

        paths = sorted(glob.glob(path_or_glob))
    dags: dict[str, Any] = {}
    problems: list[str] = []
    for path in paths:
        try:
            built = dags_from_plan(load_plan(path))
        except ExperimentConfigError as err:
            problems += [f"{path}: {p}" for p in err.problems]
            continue
        for dag_id, dag in built.items():
            if dag_id in dags:
                problems.append(f"{path}: dag_id {dag_id!r} is already used by another config")
            dags[dag_id] = dag
    if problems:
        raise ExperimentConfigError(path_or_glob, problems)
    return dags
