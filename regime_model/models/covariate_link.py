"""The covariate-logit link of time-varying transitions, and what it implies: one
definition for the transition component (:class:`~regime_model.models.transitions.
CovariateLogit`) and for the reports read from a fitted or loaded result (coefficients,
and the expected durations each date's covariates imply)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from regime_model.inference.fixed_lag import log_sum_exp
from regime_model.models.covariates import CONSTANT_GROUP, COVARIATE_VARIABLE
from regime_model.models.observations import regime_names
from regime_model.results import RegimeResult

SUMMARY_HDI = 0.9


def move_labels(n_regimes: int) -> list[str]:
    """'from->to' for every move i -> j != i, origin-major (the order of the parameters)."""
    names = regime_names(n_regimes)
    return [f"{names[i]}->{names[j]}" for i, j in _moves(n_regimes)]


def _moves(n_regimes: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n_regimes) for j in range(n_regimes) if i != j]


def move_logits(intercept, coefficient, covariates):
    """Logit of each move against staying: (M,), (M, C), (N, C) -> (N, M), M = K(K-1).
    Works on numpy arrays and PyTensor tensors alike (the model and the reports share it)."""
    return intercept + covariates @ coefficient.T


def full_logits(logits, n_regimes: int):
    """(..., M) move logits -> (..., K, K) with 0 (the reference) on the diagonal."""
    scatter = np.zeros((n_regimes * (n_regimes - 1), n_regimes * n_regimes))
    for move, (i, j) in enumerate(_moves(n_regimes)):
        scatter[move, i * n_regimes + j] = 1.0
    full = logits @ scatter
    leading = tuple(full.shape[axis] for axis in range(full.ndim - 1))
    return full.reshape((*leading, n_regimes, n_regimes))


# ---------------------------------------------------------------------- reports
def _stacked(data: xr.Dataset, name: str) -> np.ndarray:
    values = data[name].to_numpy()
    return values.reshape(-1, *values.shape[2:])


def duration_draws(result: RegimeResult) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Expected stay 1 / (1 - p_kk(x_t)) per posterior draw, date and regime, if date t's
    covariates persisted: (dates with covariates, (S, T', K) draws)."""
    if CONSTANT_GROUP not in result.inference_data.groups():
        raise ValueError(f"{result.model} result has no covariates: not a tvtp run")
    covariates = result.inference_data[CONSTANT_GROUP][COVARIATE_VARIABLE]
    values = covariates.to_numpy()
    known = ~np.isnan(values).any(axis=1)
    dates = pd.DatetimeIndex(covariates["covariate_date"].to_numpy()[known], name="date")
    dates = dates.as_unit("us")
    intercept = _stacked(result.inference_data.posterior, "transition_intercept")
    coefficient = _stacked(result.inference_data.posterior, "transition_coefficient")
    n_regimes = result.n_regimes
    # move_logits of every draw at once: (S, 1, M) + (T', C) @ (S, C, M) -> (S, T', M).
    logits = intercept[:, None, :] + values[known] @ np.swapaxes(coefficient, 1, 2)
    logits = logits.reshape(len(intercept), len(dates), n_regimes, n_regimes - 1)
    # 1 / (1 - p_stay) = 1 + 1 / sum_j exp(logit_j), in logs for stability (the package's
    # log_sum_exp: scipy's took 1.1 s on 4,000 draws of 563 weekly dates).
    return dates, 1.0 + np.exp(-log_sum_exp(logits, axis=-1))


def time_varying_durations(result: RegimeResult, hdi: float = SUMMARY_HDI) -> pd.DataFrame:
    """Posterior mean, median and HDI of each regime's expected duration (in steps of the
    data's calendar) implied by each date's covariates. Works on a loaded run.
    -> (dates, K x [mean, median, lower, upper]). At extreme covariate values the logit
    extrapolates and a few draws give near-certain stays, so the mean can be huge: read
    the median."""
    dates, draws = duration_draws(result)
    lower, upper = result._bands(draws, hdi)  # NaN for a point estimate
    median = np.median(draws, axis=0)
    columns = {}
    for k, name in enumerate(result.regime_names):
        columns[(name, "mean")] = draws[:, :, k].mean(axis=0)
        columns[(name, "median")] = median[:, k]
        columns[(name, "lower")] = lower[:, k]
        columns[(name, "upper")] = upper[:, k]
    frame = pd.DataFrame(columns, index=dates)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["regime", "statistic"])
    frame.attrs.update(kind="expected duration given the date's covariates", hdi=hdi)
    return frame


def coefficient_table(
    result: RegimeResult,
    hdi: float = SUMMARY_HDI,
    name: str = "transition_coefficient",
    move_dim: str = "move",
) -> pd.DataFrame:
    """One row per move and covariate: posterior mean, HDI and P(coefficient > 0), per
    standard deviation of the covariate (positive: the move gets more likely), of the
    posterior variable ``name`` (moves along ``move_dim``)."""
    posterior = result.inference_data.posterior
    draws = _stacked(posterior, name)
    lower, upper = result._bands(draws, hdi)  # NaN for a point estimate
    positive = (draws > 0).mean(axis=0) if len(draws) > 1 else np.full(draws.shape[1:], np.nan)
    rows = []
    for m, move in enumerate(posterior[move_dim].to_numpy()):
        source, target = str(move).split("->")
        for c, covariate in enumerate(posterior["covariate"].to_numpy()):
            rows.append(
                {
                    "from": source,
                    "to": target,
                    "covariate": str(covariate),
                    "mean": float(draws[:, m, c].mean()),
                    "lower": float(lower[m, c]),
                    "upper": float(upper[m, c]),
                    "p_positive": float(positive[m, c]),
                }
            )
    return pd.DataFrame(rows)


def model_summary(result: RegimeResult, hdi: float = SUMMARY_HDI) -> dict[str, Any]:
    """Tables for ``fit_info["model_summary"]``: coefficients, and the expected durations
    at the latest covariates and at the dates where their median was shortest and
    longest."""
    durations = time_varying_durations(result, hdi)
    latest = durations.index[-1]
    extremes = []
    for name in result.regime_names:
        median = durations[(name, "median")]
        for which, date in (("shortest", median.idxmin()), ("longest", median.idxmax())):
            extremes.append({"regime": name, "when": which, "date": f"{date:%Y-%m-%d}"})
            extremes[-1].update({s: float(durations.loc[date, (name, s)]) for s in _STATS})
    return {
        "note": (
            "coefficients per standard deviation of each lagged covariate (x_{t-1} drives "
            "the move into t); transition_matrix, expected_durations and forecast are at "
            "average covariates (x = 0); durations in steps of the data's calendar"
        ),
        "coefficients": coefficient_table(result, hdi).to_dict(orient="records"),
        "durations_latest": [
            {
                "regime": name,
                "date": f"{latest:%Y-%m-%d}",
                **{s: float(durations.loc[latest, (name, s)]) for s in _STATS},
            }
            for name in result.regime_names
        ],
        "durations_extremes": extremes,
    }


_STATS = ("mean", "median", "lower", "upper")
