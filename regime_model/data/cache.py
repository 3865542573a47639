"""Atomic parquet cache files.

A cache file is either the complete previous version or the complete new one: frames are
written to a temporary file in the same directory, flushed to disk and then renamed over
the target, so a crash or an exception mid-write never leaves a truncated file that a
later run would read as good data. Each file carries the sha256 of its content (index,
columns, values and attributes) in its metadata, checked on every read: a file changed
after it was written (by hand, by another program, by a disk fault) is refused, naming it,
instead of being read as downloaded data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa

from regime_model.errors import MalformedFileError


def write_frame_atomic(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``frame`` to parquet at ``path`` atomically (temp file, fsync, ``os.replace``),
    with its content hash in the file's metadata."""
    frame = frame.copy()
    frame.attrs = {**frame.attrs, CONTENT_HASH: frame_sha256(frame)}
    _write_atomic(path, frame.to_parquet)


CONTENT_HASH = "content_sha256"


def frame_sha256(frame: pd.DataFrame) -> str:
    """sha256 of a frame's index, columns, values (shortest round-trip text, so the same
    numbers hash the same on every platform) and attributes other than the hash."""
    digest = hashlib.sha256()
    attrs = {key: value for key, value in frame.attrs.items() if key != CONTENT_HASH}
    digest.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    digest.update(json.dumps([str(dtype) for dtype in frame.dtypes]).encode())
    digest.update(frame.to_csv(float_format="%.17g").encode())
    return digest.hexdigest()


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
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise MalformedFileError(
            f"{path}: cannot read parquet cache file ({exc}); delete it to download afresh"
        ) from exc
    stored = frame.attrs.pop(CONTENT_HASH, None)
    if stored is None:
        raise MalformedFileError(
            f"{path}: not written by this cache (no content hash); delete it to download afresh"
        )
    if frame_sha256(frame) != stored:
        raise MalformedFileError(
            f"{path}: changed after it was written (its content does not match its hash); "
            "delete it to download afresh"
        )
    return frame
