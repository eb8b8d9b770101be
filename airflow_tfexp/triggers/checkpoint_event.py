"""CheckpointEventTrigger: one asset event per new complete checkpoint, for event-driven DAGs.

Use it in an `AssetWatcher` on a checkpoint asset; a DAG scheduled on that asset then runs
once per checkpoint (several checkpoints arriving together may be collapsed into one run, whose
`triggering_asset_events` hold them all)::

    checkpoints = Asset(
        "digits_checkpoints",
        uri="file:///models/digits",
        watchers=[AssetWatcher("digits_ckpt", CheckpointEventTrigger("/models/digits"))],
    )

The watermark (the highest step already emitted) lives in the asset's state store, so a
restarted triggerer neither repeats old checkpoints nor skips new ones. It is stored one poll
after the events it covers, once the triggerer has written them: a triggerer killed in that
window emits the last checkpoints again rather than losing them (evaluation of a checkpoint
is idempotent, so the repeat costs a DAG run, not a second evaluation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_tfexp.experiment.evaluation.model_dir_scan import ModelDirScan, scan_model_dir
from airflow_tfexp.experiment.storage.fs import is_gcs
from airflow_tfexp.experiment.storage.gcs import using_credentials
from airflow_tfexp.hooks.gcp_credentials import aload_gcp_credentials
from airflow_tfexp.triggers._shared_looks import look_key, shared_looks

WATERMARK_KEY = "tfexp_checkpoint_watermark"
DEFAULT_EVALUATOR = "event"


class CheckpointEventTrigger(BaseEventTrigger):
    """Emit ``{"model_dir", "checkpoint_path", "global_step"}`` once per new complete checkpoint,
    in step order.

    :param model_dir: the model dir to watch (local or gs://).
    :param name: the evaluator that consumes the events: checkpoints it has already evaluated
        are not emitted, and while this trigger runs it registers the evaluator so training's
        checkpoint garbage collection keeps the checkpoints it has not evaluated yet.
    :param poll_interval: seconds between two looks at the model dir.
    :param gcp_conn_id: the connection whose credentials reach a gs:// model dir.
    """

    def __init__(
        self,
        model_dir: str,
        name: str | None = DEFAULT_EVALUATOR,
        poll_interval: float = 5.0,
        gcp_conn_id: str | None = None,
    ) -> None:
        super().__init__()
        self.model_dir = model_dir.rstrip("/")
        self.name = name
        self.poll_interval = poll_interval
        self.gcp_conn_id = gcp_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "model_dir": self.model_dir,
                "name": self.name,
                "poll_interval": self.poll_interval,
                "gcp_conn_id": self.gcp_conn_id,
            },
        )

    # -- seams for tests -------------------------------------------------------------------
    def _scan(self, previous: ModelDirScan | None) -> ModelDirScan:
        """One look; unchanged since the `previous` one (the state's version), one metadata
        read."""
        return scan_model_dir(self.model_dir, self.name, previous, watching=True)

    def _heartbeat(self, evaluating_step: int | None = None) -> None:
        from airflow_tfexp.experiment.evaluation.coordination import EvaluatorRegistration

        if getattr(self, "_registration", None) is None:  # one registration for this trigger's life
            self._registration = EvaluatorRegistration(
                self.model_dir, self.name, every_checkpoint=True
            )
        self._registration.heartbeat(evaluating_step)

    # -- the watermark ---------------------------------------------------------------------
    async def _stored_watermark(self) -> int | None:
        if self.asset_state_store is None:
            return None
        value = await self.asset_state_store.aget(WATERMARK_KEY)
        return int(value) if value is not None else None

    async def _store_watermark(self, step: int) -> None:
        if self.asset_state_store is not None:
            await self.asset_state_store.aset(WATERMARK_KEY, step)

    # -- the loop --------------------------------------------------------------------------
    async def _in_thread(self, function: Any, credentials: Any) -> Any:
        """Storage calls run in a thread (the event loop never blocks), with this trigger's
        credentials set in that thread's context only (never across a `yield`)."""

        def call() -> Any:
            with using_credentials(credentials):
                return function()

        return await asyncio.to_thread(call)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        credentials = None
        if is_gcs(self.model_dir):
            credentials = await aload_gcp_credentials(self.gcp_conn_id, self.log)
        stored = await self._stored_watermark()
        emitted = stored if stored is not None else -1
        unsaved: int | None = None
        last_heartbeat = 0.0
        looks = 0
        shared, key = shared_looks(), look_key(self.model_dir, self.name, self.gcp_conn_id)

        def scan_with_credentials(previous: ModelDirScan | None) -> ModelDirScan:
            with using_credentials(credentials):
                return self._scan(previous)

        with shared.watching(key):
            wanted_at = waiting_since = shared.clock()
            while True:
                # shared with the triggers watching the same model dir in this triggerer
                scan = await shared.look(
                    key, wanted_at, scan_with_credentials, based_since=waiting_since
                )

                looks += 1
                if self.name is not None and time.time() - last_heartbeat >= 60:
                    await self._in_thread(self._heartbeat, credentials)
                    last_heartbeat = time.time()
                if looks == 1:
                    floor = max(
                        emitted, scan.evaluated_max if scan.evaluated_max is not None else -1
                    )
                    self.log.info(
                        "Watching %s for complete checkpoints after step %d (stored watermark: %s, "
                        "evaluator %r evaluated up to %s); looking every %s s.",
                        self.model_dir,
                        floor,
                        stored,
                        self.name,
                        scan.evaluated_max,
                        self.poll_interval,
                    )
                    emitted = floor
                if unsaved is not None:  # the triggerer has had a poll interval to write them
                    await self._store_watermark(unsaved)
                    unsaved = None
                for checkpoint in scan.checkpoints:
                    if checkpoint.global_step <= emitted:
                        continue
                    self.log.info(
                        "New checkpoint %s (step %d): emitting an asset event.",
                        checkpoint.checkpoint_path,
                        checkpoint.global_step,
                    )
                    yield TriggerEvent(
                        {
                            "model_dir": self.model_dir,
                            "checkpoint_path": checkpoint.checkpoint_path,
                            "global_step": checkpoint.global_step,
                        }
                    )
                    emitted = unsaved = checkpoint.global_step
                wanted_at = shared.next_instant(key, self.poll_interval)
                await shared.sleep_until(wanted_at)
