"""Airflow's SimpleAuthManager with per-team DAG rights, for the attack tests: each user's
rights come from TFEXP_TEST_DAG_RIGHTS, `{"user": {"dag_id prefix": ["GET", "POST", "TI"]}}`
("TI": may read the DAG's task instances; admins may do everything)."""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

TASK_INSTANCE_ENTITIES = {
    DagAccessEntity.TASK_INSTANCE,
    DagAccessEntity.TASK_LOGS,
    DagAccessEntity.XCOM,
}


class TeamAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        if str(user.role).lower() != "admin":
            rights = json.loads(os.environ.get("TFEXP_TEST_DAG_RIGHTS", "{}")).get(
                user.username, {}
            )
            dag_id = getattr(details, "id", None) or ""
            allowed = next((set(r) for p, r in rights.items() if dag_id.startswith(p)), set())
            if method not in allowed:
                return False
            if access_entity in TASK_INSTANCE_ENTITIES and "TI" not in allowed:
                return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
