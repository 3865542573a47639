"""What the families' report tables share (:mod:`~regime_model.models.leadlag_report`,
:mod:`~regime_model.models.two_scale_report`): a posterior variable's draws with chains
flattened, and one record of a quantity's posterior mean and HDI."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from regime_model.results import bands


def stacked(posterior: xr.Dataset, name: str) -> np.ndarray:
    """(N, ...) draws of a posterior variable, chains concatenated."""
    values = posterior[name].to_numpy()
    return values.reshape(-1, *values.shape[2:])


def record(draws: np.ndarray, hdi: float, **labels: Any) -> dict[str, Any]:
    """``labels`` with the mean and HDI (NaN from a single draw) of ``draws`` (N,)."""
    lower, upper = bands(draws[:, None], hdi)
    return {
        **labels,
        "mean": float(draws.mean()),
        "lower": float(lower[0]),
        "upper": float(upper[0]),
    }
