"""Do GCS uploads stall training? steps/s with a gs:// model dir (a real GCS JSON-API server,
gcp-storage-emulator, on this machine) / steps/s with a local model dir, alternating in one run.

The digits experiment trains `--steps` steps with a checkpoint every `--checkpoint-every` steps
and summaries every 100; steps/s = steps / wall time of `KerasEstimator.train` (the final
checkpoint's upload included), the median of `--rounds` rounds of each.

The emulator stands in for a server elsewhere, so by default it runs on a core of its own and
training (TensorFlow's threads and the upload thread, whose client-side work is real) on the
others, in both the local and the gs:// rounds: on a 2-core machine an emulator sharing the
training cores would measure its own CPU, not the stall. `--no-pin` shares them.

    .venv/bin/python bench/gcs_stall.py [--steps 2000] [--checkpoint-every 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def steps_per_sec(model_dir: str, args: argparse.Namespace) -> float:
    from airflow_tfexp.examples.digits import experiment_fn, train_input_fn
    from airflow_tfexp.experiment import RunConfig

    params = {"train_steps": args.steps, "save_checkpoints_steps": args.checkpoint_every}
    estimator = experiment_fn(RunConfig(model_dir=model_dir), params).estimator
    started = time.perf_counter()
    estimator.train(train_input_fn, max_steps=args.steps)
    elapsed = time.perf_counter() - started
    uploads = getattr(estimator._storage, "uploads", None)  # noqa: SLF001 - gs:// only
    if uploads is not None:
        UPLOADS.append((uploads.upload_secs, uploads.waited_secs, elapsed))
    return args.steps / elapsed


UPLOADS: list[tuple[float, float, float]] = []  # per gs:// round: upload s, waited s, train s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-pin", action="store_true", help="emulator on the training cores")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tests.gcs_emulator import BUCKET, Emulator

    scratch = tempfile.mkdtemp(prefix="tfexp-bench-gcs-")
    emulator = Emulator(os.path.join(scratch, "emulator"))
    emulator.start()
    cores = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cores) >= 2
    if pinned:  # before TensorFlow starts its threads, which inherit the mask
        os.sched_setaffinity(emulator.process.pid, {cores[-1]})
        os.sched_setaffinity(0, set(cores[:-1]))
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
    os.environ["TFEXP_STAGING_DIR"] = os.path.join(scratch, "staging")
    local, remote = [], []
    try:
        # Warm-up (not counted): the first training in a process pays one-time costs.
        steps_per_sec(os.path.join(scratch, "warm-up"), args)
        for round_ in range(args.rounds):
            local.append(steps_per_sec(os.path.join(scratch, f"local-{round_}"), args))
            remote.append(steps_per_sec(f"gs://{BUCKET}/bench-{uuid.uuid4().hex[:8]}", args))
    finally:
        emulator.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    ratios = [r / loc for r, loc in zip(remote, local, strict=True)]
    print(
        f"digits, {args.steps} steps, checkpoint every {args.checkpoint_every}: local "
        f"{statistics.median(local):.1f} steps/s, gs:// (emulator) "
        f"{statistics.median(remote):.1f} steps/s; "
        + (
            f"training on cores {cores[:-1]}, the emulator on core {cores[-1]}"
            if pinned
            else "the emulator shares the training cores"
        )
    )
    print(
        f"ratio gs:// / local: {statistics.median(ratios):.2f} (median of {args.rounds} rounds: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.98)"
    )
    uploaded, waited, trained = (sum(column) for column in zip(*UPLOADS, strict=True))
    print(
        f"uploads (gs:// rounds): {uploaded:.2f} s in all, training blocked on them "
        f"{waited:.2f} s = {waited / uploaded:.2f} of the upload time (uploading on the training "
        f"thread, as before, blocks for all of it) and {waited / trained:.3f} of training time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
