"""The provider's names that several layers spell: defined once here. No imports, so the
engine, the adapters and the factory can all use it."""

from __future__ import annotations

# warm_start_from: the model published in publish_dir (resolved when the task runs), or none
LATEST_BLESSED = "latest_blessed"
NO_WARM_START = "none"
# Airflow params the provider itself sets: the factory's validated config, and the asset
# events that triggered a run (both data, never rendered as templates)
SPEC_PARAM = "tfexp_spec"
ASSET_EVENTS_PARAM = "tfexp_asset_events"
PROVIDER_PARAM_PREFIX = "tfexp_"
# Airflow connections, as the google provider and the Ray provider name theirs
DEFAULT_GCP_CONN_ID = "google_cloud_default"
DEFAULT_RAY_CONN_ID = "ray_default"
# CompleteTrialsOperator's XCom key for the best trial of a sweep (exported and published)
BEST_TRIAL_KEY = "best_trial"
