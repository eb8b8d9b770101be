"""Airflow's SimpleAuthManager with per-DAG read rights, which it lacks: only admins may read
DAGs whose id starts with `secret_`. Lets the UI tests show that a user sees only the DAGs they
may read (a deployment would use FAB or Keycloak for this)."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class RestrictedAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        dag_id = getattr(details, "id", None) or ""
        if dag_id.startswith("secret_") and str(user.role).lower() != "admin":
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
