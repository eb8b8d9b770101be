"""Errors the engine raises on purpose."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A checkpoint is incomplete, corrupt or does not match the model; the message names it."""


class FileTooLargeError(ValueError):
    """A file over the size a reader accepts."""


class NotARegularFileError(ValueError):
    """A FIFO, device, socket or directory where a file was expected."""


class UnsafeModelDirError(PermissionError):
    """A model dir holding links that lead out of it: writing there would write elsewhere."""


class ConcurrentUpdateError(RuntimeError):
    """A compare-and-swap update that lost to other writers every time it was tried."""
