"""A real GCS JSON-API server (gcp-storage-emulator, with Cloud Storage's request
preconditions added) for gs:// tests, on disk so that a restart keeps the data (the outage
tests stop and restart it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

BUCKET = "tfexp-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


class Emulator:
    def __init__(self, data_dir: str, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self) -> None:
        # the emulator plus Cloud Storage's request preconditions (see gcs_emulator_server.py)
        server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gcs_emulator_server.py")
        self.process = subprocess.Popen(
            [
                sys.executable,
                server,
                "--data-dir",
                self.data_dir,
                "start",
                "--port",
                str(self.port),
                "--default-bucket",
                BUCKET,
                "-q",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("localhost", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gcp-storage-emulator did not start on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
