"""Errors the engine raises on purpose."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A checkpoint is incomplete, corrupt or does not match the model; the message names it."""
