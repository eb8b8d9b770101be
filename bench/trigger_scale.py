"""Can one triggerer core hold 1,000 checkpoint waits? 1,000 concurrent `CheckpointTrigger`s in
one event loop, as the triggerer runs them, on local model dirs and on gs:// model dirs (a real
GCS JSON-API server, gcp-storage-emulator, on this machine).

Per storage kind it prints: CPU seconds this process spent per poll round (all its threads:
the event loop and the scans it hands to threads), that as a share of one core at a 10 s poll
interval, storage requests per poll per trigger (counted by each scan, and for gs:// also the
HTTP requests sent), and the detection latency: a complete checkpoint is written into every
model dir (on gs://, `--gcs-detect` of them: the emulator is one Python process) at a
random moment within one poll interval (each model dir's looks come at the instants of its
own grid, see `triggers/_shared_looks.py`), each one's completion time recorded; latency = its
trigger's event - that time, p50 and p95, against the poll interval.

`--per-dir K` puts K triggers on each model dir (the sensors of K DAG runs waiting on one
training run): they share each look, so requests per poll per trigger fall to 1/K.

    .venv/bin/python bench/trigger_scale.py [--triggers 1000] [--poll-interval 10] [--rounds 3]
        [--per-dir 1] [--skip-gcs]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def counting_trigger_class() -> Any:
    from airflow_tfexp.triggers.checkpoint import CheckpointTrigger

    class CountingTrigger(CheckpointTrigger):
        scans = 0
        requests = 0

        def _scan(self, previous: Any) -> Any:
            scan = super()._scan(previous)
            CountingTrigger.scans += 1
            CountingTrigger.requests += scan.requests
            return scan

    return CountingTrigger


def count_http_requests() -> list[int]:
    """Count HTTP requests the GCS client sends (it talks through `requests`) and the bytes of
    their responses: [requests, bytes]."""
    import requests

    counter = [0, 0]
    original = requests.Session.request

    def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        response = original(self, *args, **kwargs)
        counter[1] += len(response.content)
        return response

    requests.Session.request = request  # type: ignore[method-assign]
    return counter


def write_checkpoint(model_dir: str, step: int) -> float:
    """A complete checkpoint as training leaves it (shard, index, then the state file); returns
    when it was complete."""
    from tests.experiment.fakes import write_checkpoint as write

    write(model_dir, step)
    return time.time()


async def measure(
    kind: str, model_dirs: list[str], args: argparse.Namespace, detect: int
) -> dict[str, float]:
    """Run the triggers, print the figures and return them: `cpu_per_round` (CPU s),
    `requests_per_poll`, `http_per_poll` and `bytes_per_poll` (gs:// only), `p50`, `p95` (s)."""
    trigger_class = counting_trigger_class()
    http = count_http_requests() if kind == "gs://" else None
    triggers = [
        trigger_class(model_dir, after_step=0, poll_interval=args.poll_interval)
        for model_dir in model_dirs
        for _ in range(args.per_dir)
    ]
    fired: dict[int, float] = {}
    errors: list[str] = []

    async def wait(index: int, trigger: Any) -> None:
        async for event in trigger.run():
            if event.payload["status"] == "success":
                fired[index] = time.time()
            else:
                errors.append(event.payload.get("message", str(event.payload)))

    tasks = [asyncio.create_task(wait(i, t)) for i, t in enumerate(triggers)]
    # every trigger has made its first look (which lists and reads: a round of idle looks,
    # one metadata read each, is what is measured)
    while trigger_class.scans < len(model_dirs):
        await asyncio.sleep(0.1)
    await asyncio.sleep(args.poll_interval)  # the first looks made, a whole idle round passed
    scans0, requests0 = trigger_class.scans, trigger_class.requests
    http0, bytes0 = (http[0], http[1]) if http else (0, 0)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(args.rounds * args.poll_interval)
    cpu = time.process_time() - cpu0
    rounds = (time.monotonic() - wall0) / args.poll_interval
    polls = rounds * len(triggers)  # each trigger looks once per round, shared or not
    per_round = cpu / rounds
    sharing = f" ({args.per_dir} per model dir)" if args.per_dir > 1 else ""
    print(
        f"{kind}: {len(triggers)} triggers{sharing}, poll {args.poll_interval:g} s: "
        f"{rounds:.1f} rounds, {per_round:.2f} CPU s per round = {per_round / 10:.0%} of a core "
        f"at a 10 s poll"
    )
    made = trigger_class.scans - scans0
    requests = trigger_class.requests - requests0
    line = (
        f"  storage requests per poll per trigger: {requests / polls:.2f} (counted by the scans; "
        f"{made / polls:.2f} looks made per poll, {requests / made:.2f} requests per look)"
    )
    figures = {"cpu_per_round": per_round, "requests_per_poll": requests / polls}
    if http:
        figures["http_per_poll"] = (http[0] - http0) / polls
        figures["bytes_per_poll"] = (http[1] - bytes0) / polls
        line += (
            f", {figures['http_per_poll']:.2f} HTTP requests sent, "
            f"{figures['bytes_per_poll']:.0f} response bytes"
        )
    print(line)

    loop = asyncio.get_running_loop()
    offsets = random.Random(7)

    async def write_later(pool: Any, model_dir: str) -> float:
        await asyncio.sleep(offsets.uniform(0, args.poll_interval))
        return await loop.run_in_executor(pool, write_checkpoint, model_dir, 10)

    # The first `detect` model dirs get a new checkpoint; the other triggers keep polling.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        written = await asyncio.gather(*(write_later(pool, d) for d in model_dirs[:detect]))
    watching = detect * args.per_dir  # triggers i * per_dir ... watch model dir i
    deadline = time.monotonic() + 3 * args.poll_interval + 60
    while len(fired) < watching and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    latencies = sorted(at - written[i // args.per_dir] for i, at in fired.items())
    missed = watching - len(latencies)
    if errors:
        print(f"  {len(errors)} trigger(s) ended with an error, e.g. {errors[0]}")
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"  detection latency over {detect} new checkpoints ({watching} triggers): p50 {p50:.2f} s, p95 {p95:.2f} s, "
        f"max {latencies[-1]:.2f} s (poll interval {args.poll_interval:g} s)"
        f"{f'; {missed} never fired' if missed else ''}"
    )
    return {**figures, "p50": p50, "p95": p95, "missed": missed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-dir", type=int, default=1, help="triggers per model dir")
    parser.add_argument("--skip-gcs", action="store_true")
    parser.add_argument(
        "--gcs-detect",
        type=int,
        default=100,
        help="gs:// model dirs that get a new checkpoint (the emulator, one Python process, "
        "cannot take 1,000 uploads while serving 1,000 triggers' polls)",
    )
    args = parser.parse_args()
    import structlog

    import airflow_tfexp.triggers.checkpoint  # noqa: F401 - Airflow sets up its logging on import

    # A thousand "waiting" and "found" lines would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from tests.gcs_emulator import BUCKET, Emulator

    scratch = tempfile.mkdtemp(prefix="tfexp-bench-triggers-")
    try:
        dirs = max(1, args.triggers // args.per_dir)
        local_dirs = [os.path.join(scratch, "local", f"m{i}") for i in range(dirs)]
        for model_dir in local_dirs:
            os.makedirs(model_dir)
            write_checkpoint(model_dir, 0)
        asyncio.run(measure("local", local_dirs, args, dirs))
        if args.skip_gcs:
            return 0
        emulator = Emulator(os.path.join(scratch, "emulator"))
        emulator.start()
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
        try:
            run = uuid.uuid4().hex[:8]
            gcs_dirs = [f"gs://{BUCKET}/{run}/m{i}" for i in range(dirs)]
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda d: write_checkpoint(d, 0), gcs_dirs))
            asyncio.run(measure("gs://", gcs_dirs, args, min(args.gcs_detect, dirs)))
        finally:
            emulator.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
