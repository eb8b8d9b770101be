"""A factory config's `params:`: what a run may override, each with an optional JSON schema.

A plain value is a param without a schema; `{default, schema[, description]}` declares one
with a schema, which becomes an Airflow `Param` on the DAG (checked when a run is created).
"""

from __future__ import annotations

from typing import Any

from airflow_tfexp.names import PROVIDER_PARAM_PREFIX

PARAM_DECLARATION_KEYS = frozenset({"default", "schema", "description"})


def param_declaration(value: Any) -> dict[str, Any] | None:
    """A `params:` entry written as a declaration, `{default, schema[, description]}`, as a
    dict with all three keys; None for a plain value (a dict without "schema" is a value)."""
    if (
        not isinstance(value, dict)
        or "schema" not in value
        or not set(value) <= PARAM_DECLARATION_KEYS
    ):
        return None
    return {
        "default": value.get("default"),
        "schema": value["schema"],
        "description": value.get("description"),
    }


def check_param_schema(key: str, declared: dict[str, Any]) -> None:
    """A declared param's schema is a JSON schema and its default passes it (Airflow's `Param`
    would refuse it later, at every run)."""
    import jsonschema

    schema = declared["schema"]
    if not isinstance(schema, dict):
        raise ValueError(f"params.{key}.schema: expected a JSON schema (a mapping), got {schema!r}")
    validator = jsonschema.validators.validator_for(schema)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as err:
        raise ValueError(f"params.{key}.schema is not a valid JSON schema: {err.message}") from None
    if declared["description"] is not None and not isinstance(declared["description"], str):
        raise ValueError(f"params.{key}.description: expected text")
    default = declared["default"]
    if default is not None and not (isinstance(default, str) and "{{" in default):
        error = jsonschema.exceptions.best_match(validator(schema).iter_errors(default))
        if error is not None:
            raise ValueError(
                f"params.{key}: the default {default!r} fails its schema: {error.message}"
            )


def check_params(params: dict[str, Any]) -> None:
    """ValueError naming the first bad entry: a provider-reserved name or a bad declaration."""
    for key, item in params.items():
        if key.startswith(PROVIDER_PARAM_PREFIX):
            raise ValueError(
                f"{key!r}: params starting with {PROVIDER_PARAM_PREFIX!r} are the provider's "
                "own; choose another name"
            )
        declared = param_declaration(item)
        if declared is not None:
            check_param_schema(key, declared)


def param_declarations(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{key: {"default", "schema", "description"}}` for every entry (a plain value is its own
    default, with no schema)."""
    return {
        key: param_declaration(item) or {"default": item, "schema": {}, "description": None}
        for key, item in params.items()
    }


# What a factory template may read besides its declared params. `run_id` is chosen by whoever
# triggers over REST, but Airflow holds it to `[core] allowed_run_id_pattern` (no "/"; a "."
# or ".." segment is refused by parse_model_dir); `dag_run` carries the conf, and `dag` and
# `task` their params, so they are not here.
TEMPLATE_SAFE_NAMES = frozenset(
    {
        "params",
        "run_id",
        "ds",
        "ds_nodash",
        "ts",
        "ts_nodash",
        "logical_date",
        "data_interval_start",
        "data_interval_end",
        "macros",
    }
)


def check_template_inputs(field: str, value: Any, declared: set[str]) -> None:
    """ValueError when a templated path reads what a run's conf may set without a schema: a
    param `params:` does not declare (Airflow merges every conf key into params), the run's
    conf or run id (`dag_run`, `run_id`), or a name Airflow does not set."""
    import jinja2
    from jinja2 import nodes

    if not isinstance(value, str) or "{{" not in value and "{%" not in value:
        return
    try:
        tree = jinja2.Environment().parse(value)
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"{field}: not a valid template ({err})") from None
    for name in sorted({n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}):
        if name not in TEMPLATE_SAFE_NAMES:
            raise ValueError(
                f"{field}: the template reads {name!r}, which a run's trigger may choose "
                "freely; use a param declared under params: (with a schema) instead"
            )
    lookups = [n for n in tree.find_all(nodes.Getattr) if _is_params(n.node)]
    lookups += [
        n
        for n in tree.find_all(nodes.Getitem)
        if _is_params(n.node) and isinstance(n.arg, nodes.Const)
    ]
    plain = {id(n.node) for n in lookups}
    if any(_is_params(n) and id(n) not in plain for n in tree.find_all(nodes.Name)):
        raise ValueError(
            f"{field}: the template uses params other than as params.<name> (a filter or loop "
            "over params reads undeclared ones too); name each declared param"
        )
    used = {n.attr for n in tree.find_all(nodes.Getattr) if _is_params(n.node)}
    used |= {
        n.arg.value
        for n in tree.find_all(nodes.Getitem)
        if _is_params(n.node) and isinstance(n.arg, nodes.Const)
    }
    if any(
        _is_params(n.node) and not isinstance(n.arg, nodes.Const)
        for n in tree.find_all(nodes.Getitem)
    ):
        raise ValueError(f"{field}: the template looks params up by a computed key")
    undeclared = sorted(str(k) for k in used - declared)
    if undeclared:
        raise ValueError(
            f"{field}: the template uses params.{undeclared[0]}, which params: does not declare "
            "(a run's conf could then set it to anything); declare it, with a schema"
        )


def _is_params(node: Any) -> bool:
    from jinja2 import nodes

    return isinstance(node, nodes.Name) and node.name == "params"
