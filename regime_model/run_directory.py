"""A fitted run's directory as one unit: written whole or not at all, and verified on load.

A run is written into a temporary sibling directory (``.NAME.partial-<random suffix>``) and renamed
into place only when every file is there, with ``manifest.json`` listing each file's
sha256 and size, the draws actually taken, the input data's hash and the command. So an
interrupt (Ctrl-C, SIGTERM, a full disk) leaves either no run or the previous one, never
a mix. An existing run is replaced only when asked (``force``), and a directory that is
not a run is never replaced. Loading checks the manifest and refuses a run with a file
missing or changed, naming it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regime_model.data.cache import write_text_atomic
from regime_model.errors import MalformedFileError, RegimeModelError
from regime_model.provenance import file_sha256

MANIFEST = "manifest.json"
FORMAT = 1
# What marks a directory as a run written before manifests existed (replaceable with force).
RUN_MARKERS = (MANIFEST, "posterior.nc")


class RunExistsError(RegimeModelError):
    """The output directory holds something that would be overwritten."""


class IncompleteRunError(MalformedFileError):
    """A run directory is incomplete or was changed after it was written."""


def is_run(directory: Path) -> bool:
    return any((directory / marker).is_file() for marker in RUN_MARKERS)


def check_writable(directory: str | Path, force: bool = False) -> None:
    """Refuse, before any work, to write a run where it would overwrite something: an
    existing run unless ``force``, and anything that is not a run (a file, or a non-empty
    directory without a run in it) in any case."""
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise RunExistsError(f"{directory} is a file, not a run directory")
    if not any(directory.iterdir()):
        return
    if not is_run(directory):
        raise RunExistsError(
            f"{directory} exists and is not a run directory: not replacing it (choose "
            "another --out)"
        )
    if not force:
        raise RunExistsError(f"{directory} holds a run already: pass --force to replace it")


def write_run(
    directory: str | Path,
    write: Callable[[Path], None],
    facts: dict[str, Any],
    force: bool = False,
) -> Path:
    """Write a run: ``write(temporary)`` puts the files in a temporary sibling directory,
    then the manifest (every file's sha256 and size, plus ``facts``) is added and the
    directory renamed into place, replacing an existing run when ``force``. On any
    failure or interrupt the temporary directory is removed and an existing run is left
    as it was."""
    directory = Path(directory)
    check_writable(directory, force)
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=directory.parent))
    replaced = None
    try:
        write(partial)
        files = {
            str(path.relative_to(partial)): _file_entry(path)
            for path in sorted(partial.rglob("*"))
            if path.is_file()
        }
        manifest = {"format": FORMAT, "files": files, **facts}
        write_text_atomic(json.dumps(manifest, indent=2, default=str) + "\n", partial / MANIFEST)
        if directory.exists():
            replaced = Path(
                tempfile.mkdtemp(prefix=f".{directory.name}.replaced-", dir=directory.parent)
            )
            os.replace(directory, replaced / directory.name)
        os.replace(partial, directory)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        if replaced is not None and not directory.exists():
            os.replace(replaced / directory.name, directory)  # the old run, as it was
        raise
    finally:
        if replaced is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(replaced)
    return directory


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def verify_run(directory: str | Path) -> dict[str, Any]:
    """The manifest of a complete, unchanged run; an :class:`IncompleteRunError` naming
    what is missing or changed otherwise."""
    directory = Path(directory)
    if not directory.is_dir():
        raise IncompleteRunError(f"{directory}: no such run directory")
    path = directory / MANIFEST
    if not path.is_file():
        raise IncompleteRunError(
            f"{directory}: not a complete run (no {MANIFEST}): it was interrupted while "
            "being written, or written by a version before manifests; fit it again"
        )
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IncompleteRunError(f"{path}: unreadable manifest ({exc})") from exc
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            raise IncompleteRunError(f"{directory}: {name} is missing (listed in {MANIFEST})")
        if file_sha256(file) != expected["sha256"]:
            raise IncompleteRunError(
                f"{directory}: {name} was changed after the run was written (its sha256 "
                f"differs from {MANIFEST}); fit it again"
            )
    return manifest


def unseal(directory: str | Path) -> None:
    """Mark a many-fit output directory as being (re)written: its manifest goes first, so
    outputs interrupted halfway through a rewrite are never taken for a finished set."""
    (Path(directory) / MANIFEST).unlink(missing_ok=True)


def seal(directory: str | Path, names: list[str], facts: dict[str, Any]) -> None:
    """Write the manifest of a many-fit output directory once all of ``names`` (its
    summary outputs) are written: each file's sha256 and size plus ``facts``, verified by
    :func:`verify_run` as a fit's run is. The per-task store files are not listed: each
    carries its own content hash."""
    directory = Path(directory)
    files = {name: _file_entry(directory / name) for name in sorted(names)}
    manifest = {"format": FORMAT, "files": files, **facts}
    write_text_atomic(json.dumps(manifest, indent=2, default=str) + "\n", directory / MANIFEST)


def claim_store(directory: str | Path, identity: dict[str, Any], force: bool = False) -> None:
    """Make ``directory`` the output of a resumable many-fit run (backtest, calibration)
    described by ``identity`` (its ``config.json`` holds it): a new or empty directory,
    or one of the same run (resumed). A directory holding a run of other settings is
    refused, so that outputs of two runs never mix, unless ``force``, which empties it
    first; a directory that is not such a run is never touched."""
    directory = Path(directory)
    if not directory.exists() or (directory.is_dir() and not any(directory.iterdir())):
        return
    if not directory.is_dir():
        raise RunExistsError(f"{directory} is a file, not an output directory")
    config = directory / "config.json"
    try:
        stored = json.loads(config.read_text())
    except (OSError, ValueError):
        stored = None
    if not isinstance(stored, dict):
        raise RunExistsError(
            f"{directory} exists and holds no run of this command: not writing into it "
            "(choose another --out)"
        )
    # As config.json holds it (tuples as lists, other objects as text).
    identity = json.loads(json.dumps(identity, default=str))
    differing = sorted(key for key, value in identity.items() if stored.get(key) != value)
    if not differing:
        return  # the same run: resume it
    if not force:
        raise RunExistsError(
            f"{directory} holds a run with other settings ({', '.join(differing)} differ): "
            "its outputs and this run's would mix; choose another --out, or pass --force "
            "to replace it"
        )
    for path in directory.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
