"""Calibration of probabilistic regime forecasts against a known truth (synthetic data)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def brier_score(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """Mean over dates of sum_k (p_tk - 1[z_t = k])^2. ``probabilities`` (T, K), ``truth``
    (T,) ints. 0 is perfect; always saying 1/K scores 1 - 1/K."""
    probabilities = np.asarray(probabilities, float)
    outcome = np.eye(probabilities.shape[1])[np.asarray(truth, int)]
    return float(((probabilities - outcome) ** 2).sum(axis=1).mean())


def reliability_table(
    probabilities: np.ndarray, truth: np.ndarray, regime: int, n_bins: int = 10
) -> pd.DataFrame:
    """Forecast P(z_t = regime) in equal-width bins against how often it happened.

    One row per non-empty bin: bin edges, number of forecasts, mean forecast, observed
    frequency and its binomial standard error. A calibrated forecaster's observed frequency
    is within about two standard errors of its mean forecast in every bin.
    """
    forecast = np.asarray(probabilities, float)[:, regime]
    happened = (np.asarray(truth, int) == regime).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(forecast, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = index == b
        count = int(inside.sum())
        if not count:
            continue
        frequency = happened[inside].mean()
        rows.append(
            {
                "bin_lower": edges[b],
                "bin_upper": edges[b + 1],
                "forecasts": count,
                "mean_forecast": forecast[inside].mean(),
                "observed_frequency": frequency,
                "standard_error": np.sqrt(max(frequency * (1 - frequency), 1e-12) / count),
            }
        )
    return pd.DataFrame(rows)
