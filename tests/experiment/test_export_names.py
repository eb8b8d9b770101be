"""Export names strictly increase, so garbage collection (which keeps the highest names) never
deletes the export just written. Before, a name was the first free integer from the current
second upward: within one second, a new export could take a number below older ones and be
deleted at once ("Exported SavedModel to .../1796113046", then "Deleting export .../1796113046")."""

from __future__ import annotations

import os
import uuid

from airflow_tfexp.experiment.export.export_dirs import (
    SAVED_MODEL_FILE,
    ExportTarget,
    garbage_collect_exports,
    list_exports,
)
from airflow_tfexp.experiment.storage.fs import basename, filesystem, join


def write_export(directory: str, content: bytes) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, SAVED_MODEL_FILE), "wb") as handle:
        handle.write(content)


def test_five_exports_within_a_second_keep_the_newest(tmp_path):
    base = str(tmp_path / "export" / "latest")
    written = []
    for number in range(5):  # well within one second
        target = ExportTarget(base)
        write_export(target.temp_path, b"export %d" % number)
        written.append(target.commit())
        garbage_collect_exports(base, 2)
        assert written[-1] in list_exports(base), f"export {number} was deleted as it was made"
    names = [int(basename(path)) for path in written]
    assert names == sorted(names) and len(set(names)) == 5
    assert list_exports(base) == written[-2:]
    assert open(os.path.join(written[-1], SAVED_MODEL_FILE), "rb").read() == b"export 4"


def test_an_export_after_one_named_in_the_future_sorts_above_it(tmp_path):
    """An export named ahead of this machine's clock (another host's clock, a burst that took
    later seconds) is older, yet a time-named export would sort below it."""
    base = str(tmp_path / "export" / "latest")
    write_export(os.path.join(base, "9999999990"), b"older")
    target = ExportTarget(base)
    write_export(target.temp_path, b"newer")
    path = target.commit()
    assert basename(path) == "9999999991"
    garbage_collect_exports(base, 1)
    assert list_exports(base) == [path]


def test_gcs_exports_within_a_second_keep_the_newest(gcs_emulator, tmp_path):
    from airflow_tfexp.experiment.storage.gcs_staging import GcsStaging

    model_dir = f"gs://tfexp-test/export-names-{uuid.uuid4().hex[:8]}"
    staging = GcsStaging(model_dir, str(tmp_path / "staging"))
    remote_base = join(model_dir, "export", "latest")
    written = []
    for number in range(5):
        local = str(tmp_path / "local" / "1800000000")  # every local export: the same second
        write_export(local, b"export %d" % number)
        written.append(staging.publish_export(local, remote_base))
        garbage_collect_exports(remote_base, 2)
        assert written[-1] in list_exports(remote_base), f"export {number} was deleted"
    assert len(set(written)) == 5 and written == sorted(written)
    assert list_exports(remote_base) == written[-2:]
    content = filesystem(written[-1]).read_bytes(join(written[-1], SAVED_MODEL_FILE))
    assert content == b"export 4"
