"""The current reading of a fitted run: what regime are we in now, how sure is the model,
and could it have said so at the time.

:func:`current_reading` gathers, for the last date (the fitted data's, or the last date of
new data filtered through the fitted posterior without refitting):

- filtered P(each regime) with its HDI, and its change over the last 4 and 13 periods
  (per-draw differences, so the band is the change's own);
- the forecast P over the next 1, 4 and 13 periods;
- the input features that are missing on that date or stopped earlier (stale), since when;
- whether each date shown was read with parameters fitted on data after it. Filtered
  probabilities use the data up to their date, but a parameter fitted on later data
  makes a past date's value something the model could not have said then; only dates on
  or after the last fitted date are real-time readings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regime_model.data.features import validated
from regime_model.models.estimator import FilteredDates, RegimeEstimator
from regime_model.results import bands

CHANGE_PERIODS = (4, 13)
FORECAST_STEPS = (1, 4, 13)


def current_reading(
    model: RegimeEstimator,
    new: pd.DataFrame | Any | None = None,
    hdi: float = 0.9,
    appended: FilteredDates | None = None,
) -> dict[str, Any]:
    """The reading as plain data (see the module docstring); ``new``: data extending the
    fitted data (filtered, not refitted), None for the fitted data's last date;
    ``appended``: ``model.filter(new)`` when the caller has it already."""
    result = model.result_
    dates = result.dates
    draws = result.probabilities.filtered  # (S, T, K) for the band draws
    inputs = model.inputs_.frame
    fitted_through = model.observations_.dates[model.observations_.n_fit - 1]
    if new is not None:
        if appended is None:
            appended = model.filter(new)
        dates = dates.append(appended.dates)
        draws = np.concatenate([draws, appended.filtered], axis=1)
        later = validated(new, "new data").frame[inputs.columns]
        inputs = pd.concat([inputs, later.loc[later.index > inputs.index[-1]]])
    names = result.regime_names
    last = len(dates) - 1
    as_of = dates[last]
    inputs = inputs.loc[: dates[last]]
    probability = _summary(draws[:, last], names, hdi, result.has_bands)
    changes = []
    for periods in CHANGE_PERIODS:
        if periods > last:
            continue
        change = draws[:, last] - draws[:, last - periods]
        changes.append(
            {
                "periods": periods,
                "date": _day(dates[last - periods]),
                "then": _summary(draws[:, last - periods], names, hdi, result.has_bands),
                "change": _summary(change, names, hdi, result.has_bands),
            }
        )
    forecast = result.forecast_paths(draws[:, last], max(FORECAST_STEPS), hdi)
    forecasts = [
        {
            "steps": steps,
            **{
                name: {stat: _float(forecast.loc[steps, (name, stat)]) for stat in _STATS}
                for name in names
            },
        }
        for steps in FORECAST_STEPS
    ]
    shown = [as_of, *(dates[last - c["periods"]] for c in changes)]
    return {
        "model": result.model,
        "freq": model.inputs_.freq,
        "as_of": _day(as_of),
        "hdi": hdi,
        "has_bands": result.has_bands,
        "kind": "filtered",
        "probability": probability,
        "changes": changes,
        "forecast": forecasts,
        "features": _feature_status(inputs, as_of),
        "fitted_through": _day(fitted_through),
        "appended_dates": int(len(dates) - len(result.dates)),
        "real_time": {_day(date): bool(date >= fitted_through) for date in shown},
        "is_real_time": bool(as_of >= fitted_through),
        "diagnostics": {key: result.diagnostics().get(key) for key in ("verdict", "failures")},
    }


_STATS = ("mean", "lower", "upper")


def _summary(draws: np.ndarray, names: list[str], hdi: float, has_bands: bool) -> dict:
    """(S, K) draws -> per regime mean, lower, upper."""
    lower, upper = bands(draws, hdi, has_bands)
    return {
        name: {
            "mean": _float(draws[:, k].mean()),
            "lower": _float(lower[k]),
            "upper": _float(upper[k]),
        }
        for k, name in enumerate(names)
    }


def _feature_status(inputs: pd.DataFrame, as_of: pd.Timestamp) -> list[dict[str, Any]]:
    """Each input column's last observed date and, when that is before ``as_of``, how many
    periods it is stale."""
    rows = []
    for column in inputs.columns:
        observed = inputs[column].dropna()
        last = observed.index[-1] if len(observed) else None
        stale = 0 if last is None else int((inputs.index > last).sum())
        rows.append(
            {
                "feature": column,
                "last_observed": None if last is None else _day(last),
                "missing_at_end": bool(last is None or last < as_of),
                "periods_stale": stale,
            }
        )
    return rows


def format_reading(reading: dict[str, Any], run: str = "") -> str:
    """The reading as a few lines of text."""
    names = list(reading["probability"])
    lines = [
        f"regime now: {run} ({reading['model']}, {len(names)} regimes, {reading['freq']} data)"
        if run
        else f"regime now ({reading['model']})",
        f"as of {reading['as_of']}, filtered (data up to that date)"
        + (
            f"; {reading['appended_dates']} dates appended after the fit, read without refitting"
            if reading["appended_dates"]
            else ""
        ),
    ]
    band = f"{reading['hdi']:.0%} HDI" if reading["has_bands"] else "no bands: point estimate"
    for name in names:
        value = reading["probability"][name]
        lines.append(f"  P({name}) = {value['mean']:.2f} {_band(value)}   ({band})")
    for change in reading["changes"]:
        parts = [
            f"P({name}) {change['then'][name]['mean']:.2f}, change "
            f"{change['change'][name]['mean']:+.2f} {_band(change['change'][name], signed=True)}"
            for name in names[-1:]
        ]
        lines.append(f"  {change['periods']:>2} periods before ({change['date']}): {parts[0]}")
    steps = ", ".join(
        f"+{row['steps']}: {row[names[-1]]['mean']:.2f} {_band(row[names[-1]])}"
        for row in reading["forecast"]
    )
    lines.append(f"forecast P({names[-1]}) {steps}")
    stale = [row for row in reading["features"] if row["missing_at_end"]]
    if stale:
        lines.append("missing or stale at the as-of date:")
        for row in stale:
            since = row["last_observed"] or "never observed"
            lines.append(
                f"  {row['feature']}: last observed {since}, {row['periods_stale']} periods "
                "before; the reading on the dates since uses the other features only"
            )
    else:
        lines.append("every feature is observed on the as-of date")
    diagnostics = reading.get("diagnostics") or {}
    if diagnostics.get("verdict") == "fail":
        lines.append(
            "diagnostics: FAIL, so the probabilities and bands above are not reliable: "
            + "; ".join(diagnostics.get("failures") or [])
        )
    elif diagnostics.get("verdict"):
        lines.append(f"diagnostics: {diagnostics['verdict']}")
    real_time = reading["real_time"]
    late = [date for date, ok in real_time.items() if not ok]
    if reading["is_real_time"]:
        head = (
            f"real-time: yes for {reading['as_of']}: the parameters were fitted on data "
            f"through {reading['fitted_through']}"
        )
    else:
        head = (
            f"real-time: NO: the parameters were fitted on data through "
            f"{reading['fitted_through']}, after {reading['as_of']}"
        )
    lines.append(head)
    if late:
        lines.append(
            f"  not real-time: {', '.join(late)} (parameters fitted with later data; a "
            "walk-forward 'regime backtest' gives the values the model said then)"
        )
    return "\n".join(lines)


def _band(value: dict, signed: bool = False) -> str:
    if value["lower"] is None:
        return ""
    form = "+.2f" if signed else ".2f"
    return f"[{value['lower']:{form}}, {value['upper']:{form}}]"


def plot_reading(
    model: RegimeEstimator,
    reading: dict[str, Any],
    path: str | Path,
    appended: FilteredDates | None = None,
    years: float = 3.0,
) -> Path:
    """Write the one-page figure of the reading (:func:`regime_model.plots.reading_figure`)
    over the last ``years`` of dates (fitted and ``appended``) to ``path``."""
    from regime_model.plots import reading_figure

    name = model.result_.regime_names[-1]
    table = last_years(filtered_history(model, name, reading["hdi"], appended), years)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reading_figure(table, reading, name).savefig(path, dpi=110)
    return path


def filtered_history(
    model: RegimeEstimator, regime: str, hdi: float, appended: FilteredDates | None = None
) -> pd.DataFrame:
    """Filtered P(``regime``) per date, mean and HDI: the fitted dates, then the
    ``appended`` ones."""
    table = model.result_.regime_probabilities("filtered", hdi)[regime]
    if appended is None:
        return table
    return pd.concat([table, appended.probabilities("filtered", hdi)[regime]])


def last_years(table: pd.DataFrame, years: float = 3.0) -> pd.DataFrame:
    """The rows of a date-indexed table within ``years`` of its last date."""
    return table.loc[table.index > table.index[-1] - pd.Timedelta(days=round(365.25 * years))]


def _day(date: pd.Timestamp) -> str:
    return pd.Timestamp(date).strftime("%Y-%m-%d")


def _float(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value
