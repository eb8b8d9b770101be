"""The `gs://` asset URIs of model dirs and publish dirs (`[asset-uris]` of get_provider_info):
Airflow normalizes them, builds them from a path, and names them for OpenLineage. Local dirs
are `file://` assets, which the common-io provider (installed with Airflow) handles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from airflow_tfexp.lineage.naming import dataset_name

if TYPE_CHECKING:
    from airflow.sdk import Asset


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """A gs:// URI names a bucket; a trailing slash is dropped, so one dir is one asset."""
    if not uri.netloc:
        raise ValueError("URI format gs:// must contain a bucket name, e.g. gs://bucket/models.")
    return uri._replace(path=uri.path.rstrip("/"))


def create_asset(*, path: str, extra: dict[str, Any] | None = None) -> Asset:
    """The asset of a gs:// model or publish dir."""
    from airflow.sdk import Asset

    if not path.startswith("gs://"):
        path = "gs://" + path.lstrip("/")
    return Asset(uri=path.rstrip("/"), extra=extra)


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any = None) -> Any:
    """The OpenLineage dataset of a gs:// asset: namespace gs://bucket, name the object path."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    namespace, name = dataset_name(asset.uri)
    return Dataset(namespace=namespace, name=name)
