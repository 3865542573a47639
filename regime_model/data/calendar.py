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

import pandas as pd

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
