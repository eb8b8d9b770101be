"""Exporters (tf.estimator's): what to export after an evaluation, and how many exports to keep.

An exporter writes to `model_dir/export/<name>/<timestamp>/` through the estimator's
`export_saved_model`, which renames a finished export into place. Every exporter shares one
private SavedModel exporter by composition and one garbage-collection helper.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from airflow_tfexp.experiment._validation import check_mode, check_optional_int
from airflow_tfexp.experiment.evaluation.results import to_jsonable
from airflow_tfexp.experiment.export.export_dirs import (
    garbage_collect_exports,
    remove_stale_temp_dirs,
)
from airflow_tfexp.experiment.storage.fs import filesystem, join

log = logging.getLogger(__name__)
BEST_RESULT_FILE = "best_eval_result.json"

CompareFn = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


def _loss_smaller(
    best_eval_result: Mapping[str, Any], current_eval_result: Mapping[str, Any]
) -> bool:
    """The default `compare_fn`: the current result is better when its `loss` is smaller."""
    for which, result in (
        ("best_eval_result", best_eval_result),
        ("current_eval_result", current_eval_result),
    ):
        if not result or "loss" not in result:
            raise ValueError(f"`{which}` has no `loss` to compare. Received: {result!r}.")
    return current_eval_result["loss"] < best_eval_result["loss"]


def metric_compare_fn(metric: str, mode: str = "min") -> CompareFn:
    """A `compare_fn` for BestExporter on any metric: lower wins for "min", higher for "max"."""
    check_mode("mode", mode)

    def compare(
        best_eval_result: Mapping[str, Any], current_eval_result: Mapping[str, Any]
    ) -> bool:
        best, current = best_eval_result[metric], current_eval_result[metric]
        return current < best if mode == "min" else current > best

    compare.__name__ = f"{metric}_{'smaller' if mode == 'min' else 'larger'}"
    compare.metric = metric  # type: ignore[attr-defined]  # checked against the first result
    return compare


class Exporter:
    """Base class: `export()` is called after each evaluation with its result."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValueError(
                f"Invalid value for exporter `name`. Received: {name!r}. Expected a non-empty "
                "directory name without '/'."
            )
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def export(
        self,
        estimator: Any,
        export_path: str,
        checkpoint_path: str | None,
        eval_result: Mapping[str, Any] | None,
        is_the_final_export: bool,
    ) -> str | None:
        """Export and return the export directory, or None when nothing was exported."""
        raise NotImplementedError

    def check_serving(self, estimator: Any, input_fn: Callable[[], Any]) -> None:
        """Check, before training, that this exporter can export the estimator's model
        (ValueError naming the problem); an exporter of the user's own checks nothing."""


class _SavedModelExporter(Exporter):
    """Writes one SavedModel through the estimator; composed into the public exporters."""

    def __init__(self, name: str, serving_input_fn: Callable[[], Any] | None) -> None:
        super().__init__(name)
        if serving_input_fn is not None and not callable(serving_input_fn):
            raise ValueError(
                f"Invalid value for `serving_input_fn`. Received: {serving_input_fn!r}. "
                "Expected a callable returning a tf.TensorSpec (or a dict of them), or None."
            )
        self._serving_input_fn = serving_input_fn

    def check_serving(self, estimator: Any, input_fn: Callable[[], Any]) -> None:
        check = getattr(estimator, "check_serving_input", None)
        if check is not None:  # a bring-your-own estimator's export has its own contract
            check(self._serving_input_fn, input_fn)

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        remove_stale_temp_dirs(export_path)
        return estimator.export_saved_model(
            export_path, serving_input_fn=self._serving_input_fn, checkpoint_path=checkpoint_path
        )


class _ExportsSavedModels(Exporter):
    """An exporter that writes SavedModels with a `serving_input_fn` (the public ones)."""

    def __init__(self, name: str, serving_input_fn: Callable[[], Any] | None = None) -> None:
        super().__init__(name)
        self._saved_model_exporter = _SavedModelExporter(name, serving_input_fn)

    def check_serving(self, estimator: Any, input_fn: Callable[[], Any]) -> None:
        self._saved_model_exporter.check_serving(estimator, input_fn)


class LatestExporter(_ExportsSavedModels):
    """Export after every evaluation; keep the newest `exports_to_keep` (None keeps all)."""

    def __init__(
        self,
        name: str,
        serving_input_fn: Callable[[], Any] | None = None,
        exports_to_keep: int | None = 5,
    ) -> None:
        super().__init__(name, serving_input_fn)
        self._exports_to_keep = check_optional_int("exports_to_keep", exports_to_keep, minimum=1)

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        path = self._saved_model_exporter.export(
            estimator, export_path, checkpoint_path, eval_result, is_the_final_export
        )
        garbage_collect_exports(export_path, self._exports_to_keep)
        return path


class FinalExporter(_ExportsSavedModels):
    """Export only the final model (after the evaluation of the last checkpoint)."""

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        if not is_the_final_export:
            log.info("FinalExporter %r: skipped, this is not the final export.", self.name)
            return None
        return self._saved_model_exporter.export(
            estimator, export_path, checkpoint_path, eval_result, is_the_final_export
        )


def _parse_best(raw: bytes, path: str) -> dict[str, Any]:
    try:
        best = json.loads(raw)
    except ValueError:
        best = None
    if not isinstance(best, dict) or not isinstance(best.get("eval_result"), dict):
        raise ValueError(
            f"{path} is not a best result (a JSON object with an `eval_result`): "
            f"{raw[:80]!r}. Delete it to start the best over, or restore it."
        )
    return best


class BestExporter(_ExportsSavedModels):
    """Export when an evaluation beats the best so far (by `compare_fn`, default lower `loss`).

    The best result is stored beside the exports (`best_eval_result.json`), so a restarted
    evaluator remembers it and never exports a worse model as "best"; exactly the newest
    `exports_to_keep` best exports are kept. Concurrent evaluators (mapped evaluations) keep the
    true best: it is updated by compare-and-swap, and an export beaten meanwhile is deleted.
    """

    def __init__(
        self,
        name: str = "best_exporter",
        serving_input_fn: Callable[[], Any] | None = None,
        compare_fn: CompareFn = _loss_smaller,
        exports_to_keep: int | None = 5,
    ) -> None:
        super().__init__(name, serving_input_fn)
        if not callable(compare_fn):
            raise ValueError(
                f"Invalid value for `compare_fn`. Received: {compare_fn!r}. Expected a callable "
                "(best_eval_result, current_eval_result) -> bool."
            )
        self._compare_fn = compare_fn
        self._exports_to_keep = check_optional_int("exports_to_keep", exports_to_keep, minimum=1)

    @staticmethod
    def best_result(export_path: str) -> dict[str, Any] | None:
        """The stored best: {"eval_result", "export_dir", "checkpoint_path"}, or None."""
        path = join(export_path, BEST_RESULT_FILE)
        raw = filesystem(path).read_bytes(path)
        return _parse_best(raw, path) if raw else None

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        if not eval_result:
            log.info(
                "BestExporter %r: skipped, there is no evaluation result to compare.", self.name
            )
            return None
        metric = getattr(self._compare_fn, "metric", None)
        if metric is not None and metric not in eval_result:  # a typo fails at the first export
            raise ValueError(
                f"BestExporter {self.name!r} compares {metric!r}, which the evaluation does not "
                f"have; its metrics are: {', '.join(sorted(map(str, eval_result)))}. Fix the "
                "name given to metric_compare_fn."
            )
        best = self.best_result(export_path)
        if best is not None and not self._compare_fn(best["eval_result"], eval_result):
            log.info(
                "BestExporter %r: skipped step %s, not better than the best so far (step %s) by %s.",
                self.name,
                eval_result.get("global_step"),
                best["eval_result"].get("global_step"),
                getattr(self._compare_fn, "__name__", "compare_fn"),
            )
            return None
        path = self._saved_model_exporter.export(
            estimator, export_path, checkpoint_path, eval_result, is_the_final_export
        )
        if not self._record_best(export_path, path, checkpoint_path, eval_result):
            log.info(
                "BestExporter %r: step %s was beaten meanwhile by another evaluator's export; "
                "deleting %s.",
                self.name,
                eval_result.get("global_step"),
                path,
            )
            filesystem(path).delete_tree(path)
            return None
        garbage_collect_exports(export_path, self._exports_to_keep)
        return path

    def _record_best(
        self, export_path: str, path: str, checkpoint_path: str, eval_result: Mapping[str, Any]
    ) -> bool:
        """Store this export as the best, compare-and-swap: False (nothing written) when a
        concurrent exporter recorded a better one between the check and now."""
        best_path = join(export_path, BEST_RESULT_FILE)
        record = {
            "eval_result": to_jsonable(eval_result),
            "export_dir": path,
            "checkpoint_path": checkpoint_path,
        }

        already = []

        def if_still_best(raw: bytes | None) -> bytes | None:
            best = _parse_best(raw, best_path) if raw else None
            if best is not None and best.get("export_dir") == path:
                already.append(True)  # a retried write that had in fact landed
                return None
            if best is not None and not self._compare_fn(best["eval_result"], eval_result):
                return None
            return json.dumps(record, indent=1, sort_keys=True).encode()

        return filesystem(best_path).update_bytes(best_path, if_still_best) or bool(already)
