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
