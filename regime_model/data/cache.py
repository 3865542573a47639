"""Atomic parquet cache files.

A cache file is either the complete previous version or the complete new one: frames are
written to a temporary file in the same directory, flushed to disk and then renamed over
the target, so a crash or an exception mid-write never leaves a truncated file that a
later run would read as good data.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa

from regime_model.errors import MalformedFileError


def write_frame_atomic(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``frame`` to parquet at ``path`` atomically (temp file, fsync, ``os.replace``)."""
    _write_atomic(path, frame.to_parquet)


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically, like :func:`write_frame_atomic`."""
    _write_atomic(path, lambda stream: stream.write(text.encode("utf-8")))


def _write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the target: os.replace is only atomic within one file system.
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) on every platform.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def read_frame(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a parquet cache file; raise :class:`MalformedFileError` naming it if unreadable."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise MalformedFileError(
            f"{path}: cannot read parquet cache file ({exc}); delete it to download afresh"
        ) from exc
