"""Calendar alignment: put series that trade on different days onto one date grid.

Rules (docs/data.md explains them with examples):

* ``daily``: the grid is the set of US equity trading days found in the equity inputs
  (crypto-only universes use the crypto days). Every input is sampled *as of* each grid
  date, so a crypto price on Monday is Monday's 24:00 UTC close and Monday's log return
  spans Saturday, Sunday and Monday: weekend crypto returns accumulate into the next
  trading day.
* ``weekly``: the grid is Fridays; each input contributes its last value in the week
  ending that Friday (Thursday's close in a week whose Friday is a holiday). A week whose
  Friday lies after the last date of the grid-defining data is not emitted, because it is
  not complete yet.
* Published series (``release``, e.g. FRED weekly/monthly data) become known
  ``release_lag_days`` after their observation date and are carried forward at most
  ``max_staleness_days`` calendar days. Nothing is ever carried backwards.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regime_model.choices import COARSE_FREQUENCIES

FREQUENCIES = ("daily", "weekly")
# In weekly mode a market price may come from any day of the week ending on Friday.
_WEEK_DAYS = 6


def build_grid(dates_by_calendar: dict[str, list[pd.DatetimeIndex]], freq: str) -> pd.DatetimeIndex:
    """The target dates: equity trading days (or crypto days), or their Fridays.

    ``dates_by_calendar`` maps an input calendar ("equity", "crypto", "release") to the
    native date indexes of the inputs that follow it.
    """
    if freq not in FREQUENCIES:
        raise ValueError(f"unknown frequency {freq!r}; use one of {', '.join(FREQUENCIES)}")
    for calendar in ("equity", "crypto", "release"):
        indexes = dates_by_calendar.get(calendar, [])
        if indexes:
            days = indexes[0]
            for index in indexes[1:]:
                days = days.union(index)
            break
    else:
        return pd.DatetimeIndex([], name="date")
    days = days.sort_values()
    if freq == "daily":
        return pd.DatetimeIndex(days, name="date")
    fridays = week_ending_friday(days).unique()
    return pd.DatetimeIndex(fridays[fridays <= days[-1]], name="date")


def week_ending_friday(dates: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The Friday that ends the (Saturday-to-Friday) week containing each date."""
    offset = (4 - dates.day_of_week) % 7
    return pd.DatetimeIndex(dates + pd.to_timedelta(offset, unit="D"))


def align_to_calendar(
    series: pd.Series,
    grid: pd.DatetimeIndex,
    freq: str,
    release_lag_days: int = 0,
    max_staleness_days: int = 0,
) -> pd.Series:
    """Sample ``series`` as of each grid date, honouring publication lag and staleness.

    The value at grid date g is the latest observation published on or before g
    (observation date + ``release_lag_days`` <= g) if it is at most ``max_staleness_days``
    old (weekly grids allow the whole week). Otherwise the value is missing.
    Shapes: ``series`` (N,) on its own dates -> (len(grid),) on ``grid``.
    """
    tolerance = max(max_staleness_days, _WEEK_DAYS) if freq == "weekly" else max_staleness_days
    observed = series.dropna()
    known = pd.DataFrame(
        {
            "known_at": observed.index + pd.Timedelta(days=release_lag_days),
            "value": observed.to_numpy(dtype=float),
        }
    )
    targets = pd.DataFrame({"date": grid})
    if known.empty or targets.empty:
        return pd.Series(float("nan"), index=grid, name=series.name)
    merged = pd.merge_asof(
        targets,
        known,
        left_on="date",
        right_on="known_at",
        direction="backward",
        tolerance=pd.Timedelta(days=tolerance),
    )
    return pd.Series(merged["value"].to_numpy(), index=grid, name=series.name)


# ---------------------------------------------------------------- coarse periods
# The coarse calendar of a two-scale model (months by default) over the fine grid:
# COARSE_FREQUENCIES, from regime_model.choices.


def period_openings(dates, freq: str = "M") -> np.ndarray:
    """(T,) bool: True on the first grid date of each coarse period (calendar month
    ``"M"``, quarter ``"Q"``, week ``"W"``) of the strictly increasing ``dates``."""
    index = pd.DatetimeIndex(dates)
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError("the dates must be strictly increasing")
    if freq not in COARSE_FREQUENCIES:
        raise ValueError(
            f"the coarse calendar must be one of {', '.join(COARSE_FREQUENCIES)}, not {freq!r}"
        )
    periods = index.to_period(freq).asi8
    return np.r_[True, periods[1:] != periods[:-1]] if len(index) else np.zeros(0, dtype=bool)


def period_closings(opens: np.ndarray) -> np.ndarray:
    """(P,) the last grid date of each coarse period that has ended within the grid (a
    later date falls in the next period); the last period is unfinished: no one knows
    at its last grid date that no other date of it will follow."""
    return np.flatnonzero(np.asarray(opens, dtype=bool))[1:] - 1


def coarse_observations(frame: pd.DataFrame, columns: list[str], freq: str = "M") -> pd.DataFrame:
    """``frame`` with ``columns`` kept only on the closing date of each ended coarse period
    (:func:`period_closings`) and missing elsewhere: a period's coarse observation is the
    value known on its last grid date (the grid's release-lag alignment already holds
    back what was not published by then), so nothing later enters it."""
    unknown = [column for column in columns if column not in frame.columns]
    if unknown:
        raise ValueError(
            f"coarse columns {', '.join(unknown)} are not among the features "
            f"({', '.join(frame.columns)})"
        )
    closing = np.zeros(len(frame), dtype=bool)
    closing[period_closings(period_openings(frame.index, freq))] = True
    placed = frame.copy()
    placed.loc[~closing, columns] = np.nan
    return placed
