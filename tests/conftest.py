"""Test-wide settings: quiet TensorFlow, artifacts folder, and the tests dir on PYTHONPATH for
subprocesses (they import tests.experiment.tiny_experiment)."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
os.environ.pop("TF_CONFIG", None)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
