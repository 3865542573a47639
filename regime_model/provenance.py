"""What a fitted run needs to be reproduced: input hash, columns, package versions."""

from __future__ import annotations

import hashlib
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from regime_model.data.features import FeatureSet

PACKAGES = ("regime-model", "pymc", "pytensor", "arviz", "numpy", "pandas", "hmmlearn", "numba")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_config(features_path: str | Path, features: FeatureSet) -> dict[str, Any]:
    """Provenance fields added to a run's config.json."""
    return {
        "features_path": str(Path(features_path).resolve()),
        "features_sha256": file_sha256(features_path),
        "features_freq": features.freq,
        "groups": features.groups,
        "versions": package_versions(),
        "command": " ".join(["regime", *sys.argv[1:]]),
    }
