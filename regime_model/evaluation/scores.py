"""Scores of a walk-forward backtest: out-of-sample log predictive density, and the Brier
score and calibration of the one-step regime forecasts against a known truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regime_model.calibration import brier_score, reliability_table
from regime_model.data.sources import read_dated_csv
from regime_model.errors import MalformedFileError


def log_score_by_year(log_predictive_density: pd.Series) -> pd.DataFrame:
    """Sum and mean of log p(y_t | y_1..t-1) per calendar year. (T,) -> one row a year."""
    values = log_predictive_density.astype(float)
    grouped = values.groupby(values.index.year)
    table = pd.DataFrame({"dates": grouped.size(), "sum": grouped.sum(), "mean": grouped.mean()})
    table.index.name = "year"
    return table.reset_index()


def log_score_summary(log_predictive_density: pd.Series) -> dict[str, Any]:
    """Total, count and mean per date of the out-of-sample log predictive density."""
    values = log_predictive_density.to_numpy(dtype=float)
    return {
        "dates": len(values),
        "sum": float(values.sum()),
        "mean": float(values.mean()) if len(values) else None,
    }


def read_truth(path: str | Path) -> pd.Series:
    """The true regime per date (0 = risk_off) from a ``.truth.csv`` written by
    ``regime data build --source synthetic``."""
    path = Path(path)
    frame = read_dated_csv(path, missing="truth file not found")
    if "regime" not in frame.columns:
        raise MalformedFileError(f"{path}: no 'regime' column")
    dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    regimes = pd.to_numeric(frame["regime"], errors="coerce")
    bad = dates.isna() | (regimes.isna() & frame["regime"].notna())
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + 2
        raise MalformedFileError(f"{path}: line {line}: unreadable date or regime")
    return pd.Series(regimes.to_numpy(), index=pd.DatetimeIndex(dates, name="date")).dropna()


def forecast_scores(
    predicted: pd.DataFrame,
    filtered: pd.DataFrame,
    truth: pd.Series,
    n_bins: int = 10,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Brier scores of the one-step regime forecasts P(z_t | y_1..t-1) (``predicted``) and
    of the filtered P(z_t | y_1..t), and the calibration table of the forecasts of the top
    regime (risk_on). ``predicted``/``filtered``: (T, K) posterior means, one column per
    regime in order; ``truth``: the true regime index per date.

    Returns (scores, table); the table is None, with the reason in ``scores["note"]``,
    when the truth has another number of regimes or shares no date with the forecasts.
    """
    n_regimes = predicted.shape[1]
    truth = truth.reindex(predicted.index).dropna().astype(int)
    n_true = int(truth.max()) + 1 if len(truth) else 0
    if not len(truth):
        return {"note": "the truth file shares no date with the scored dates"}, None
    if n_true != n_regimes:
        return {
            "note": f"the truth has {n_true} regimes and the model {n_regimes}: no Brier score"
        }, None
    dates = truth.index
    forecast = predicted.loc[dates].to_numpy()
    nowcast = filtered.loc[dates].to_numpy()
    scores = {
        "dates": len(dates),
        "brier_predicted": brier_score(forecast, truth.to_numpy()),
        "brier_filtered": brier_score(nowcast, truth.to_numpy()),
        # Always forecasting 1/K scores 1 - 1/K: the no-skill reference.
        "brier_uniform": 1.0 - 1.0 / n_regimes,
        "share_in_top_regime": float(np.mean(truth.to_numpy() == n_regimes - 1)),
    }
    table = reliability_table(forecast, truth.to_numpy(), regime=n_regimes - 1, n_bins=n_bins)
    table.insert(0, "regime", predicted.columns[n_regimes - 1])
    return scores, table


def format_scores(scores: dict[str, Any]) -> str:
    """The text ``regime backtest`` prints about a :meth:`BacktestResult.scores` dict."""
    total = scores["log_predictive_density"]
    lines = [
        f"Out-of-sample log predictive density over {total['dates']} dates "
        f"({scores['refits']} refits): sum {total['sum']:.2f}, mean {total['mean']:.3f} per date",
        "  year   dates        sum    mean",
    ]
    lines += [
        f"  {row['year']}  {row['dates']:>6} {row['sum']:>10.2f} {row['mean']:>7.3f}"
        for row in scores["log_predictive_density_by_year"]
    ]
    forecasts = scores.get("regime_forecasts")
    if forecasts and "note" in forecasts:
        lines.append(f"Regime forecasts: {forecasts['note']}")
    elif forecasts:
        lines.append(
            f"Brier score against the true regimes ({forecasts['dates']} dates; 0 is perfect, "
            f"{forecasts['brier_uniform']:.2f} for always 1/K): one-step forecast "
            f"{forecasts['brier_predicted']:.3f}, filtered {forecasts['brier_filtered']:.3f}"
        )
    return "\n".join(lines)
