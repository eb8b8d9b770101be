"""The local disk."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Callable

from airflow_tfexp.experiment.errors import (
    FileTooLargeError,
    NotARegularFileError,
    UnsafeModelDirError,
)

UPDATE_MAX_BYTES = 64 * 2**20  # the largest file `update_bytes` reads (its files are small)


def fsync_dir(directory: str) -> None:
    """Make a directory's entries (a rename or create in it) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalFileSystem:
    def listdir(self, directory: str) -> list[str]:
        try:
            return os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read_bytes(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def version(self, path: str) -> tuple[int, int, int] | None:
        try:
            status = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size

    def touch(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)

    def read_bytes_at_most(self, path: str, limit: int) -> bytes | None:
        try:  # O_NONBLOCK: opening a FIFO with no writer must not hang the reader
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise NotARegularFileError(f"{path} is a directory, not a file") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(mode)
                else "a directory"
                if stat.S_ISDIR(mode)
                else "a device or socket"
            )
            raise NotARegularFileError(f"{path} is {kind}, not a regular file")
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise FileTooLargeError(f"{path} is over {limit:,} bytes")
        return data

    @staticmethod
    def _write_temp(path: str, data: bytes) -> str:
        """`data` in a new, fsynced temporary file beside `path`; returns its name."""
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def write_bytes(self, path: str, data: bytes) -> None:
        tmp = self._write_temp(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        fsync_dir(os.path.dirname(path) or ".")  # the rename itself survives a power cut

    def create_new(self, path: str, data: bytes) -> bool:
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)  # fails if `path` exists: exclusive, and never seen half-written
            fsync_dir(os.path.dirname(path) or ".")
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def update_bytes(self, path: str, change: Callable[[bytes | None], bytes | None]) -> bool:
        directory, name = os.path.split(path)
        os.makedirs(directory or ".", exist_ok=True)
        # the lock file, not the data file, is locked: the data file is replaced by rename
        lock_path = os.path.join(directory, f".{name}.lock")
        try:
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as err:  # a link (ELOOP) or a dir planted where the lock goes
            raise UnsafeModelDirError(
                f"Cannot lock {path}: {lock_path} is {'a link' if os.path.islink(lock_path) else 'not a file'} "
                f"({err.strerror}). Remove it; it is recreated as a plain file."
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released by close, or by the kernel on a crash
            # bounded and never blocking: a FIFO or a huge file planted there is an error
            new = change(self.read_bytes_at_most(path, UPDATE_MAX_BYTES))
            if new is None:
                return False
            self.write_bytes(path, new)
            return True
        finally:
            os.close(lock)

    def append_line(self, path: str, line: str) -> None:
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        if os.path.islink(directory):
            raise UnsafeModelDirError(f"{directory} is a link: refusing to append to {path}.")
        # O_NOFOLLOW: a results file that is a link (into another team's dir) is not appended
        # to; nor is one hard-linked from elsewhere (it is another dir's file too)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        if os.fstat(fd).st_nlink > 1:
            os.close(fd)
            raise UnsafeModelDirError(
                f"{path} is hard-linked from elsewhere: refusing to append to it."
            )
        # a torn last line (a full disk, a kill) ends here, not glued to this record
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        with os.fdopen(fd, "a") as handle:
            handle.write(("\n" if torn else "") + line.rstrip("\n") + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def delete(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def delete_tree(self, directory: str) -> None:
        shutil.rmtree(directory, ignore_errors=True)


LOCAL = LocalFileSystem()
