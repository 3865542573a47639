"""When a walk-forward backtest refits, and on which dates each refit is fitted and scored.

A refit on date r fits on dates strictly before r and scores r up to the day before the
next refit with the filter only. Dates are the feature table's own (weekly Fridays or US
trading days), so a refit date is always a data date: the first one on or after ``start``
in each month or quarter.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from regime_model.errors import DateRangeError, InsufficientDataError

EVERY = {"month": "M", "quarter": "Q"}  # refit frequency -> pandas period code
EXPANDING = "expanding"


@dataclass(frozen=True)
class Refit:
    """One refit: fit on ``fit_start`` .. the date before ``refit_date``, then score
    ``refit_date`` .. ``score_end`` one step ahead without refitting."""

    refit_date: pd.Timestamp
    fit_start: pd.Timestamp
    score_end: pd.Timestamp
    n_fit_dates: int
    n_scored_dates: int

    @property
    def name(self) -> str:
        """``YYYY-MM-DD`` of the refit date: the segment's name in files and messages."""
        return self.refit_date.strftime("%Y-%m-%d")


def parse_window(value: str | int) -> str | int:
    """``"expanding"`` or a positive number of dates (a rolling window)."""
    if isinstance(value, int) or str(value).strip().isdigit():
        size = int(value)
        if size < 1:
            raise ValueError(f"window must be 'expanding' or a positive number of dates: {value}")
        return size
    if str(value).strip().lower() == EXPANDING:
        return EXPANDING
    raise ValueError(f"window must be 'expanding' or a positive number of dates, not {value!r}")


def refit_schedule(
    dates: pd.DatetimeIndex,
    start: str | pd.Timestamp,
    every: str,
    window: str | int,
    min_fit_dates: int,
) -> list[Refit]:
    """The refits of a backtest over ``dates`` (sorted data dates, length T).

    ``every``: "month" or "quarter"; ``window``: "expanding" (every date before the refit)
    or N (the last N dates before it). ``min_fit_dates``: the fewest dates a fit may have.
    Raises :class:`DateRangeError` when ``start`` is outside the data and
    :class:`InsufficientDataError` when the first refit would have too few dates to fit.
    """
    if every not in EVERY:
        raise ValueError(f"every must be one of {', '.join(EVERY)}, not {every!r}")
    window = parse_window(window)
    dates = pd.DatetimeIndex(dates)
    start = pd.Timestamp(start)
    if start <= dates[0]:
        raise DateRangeError(
            f"start {start:%Y-%m-%d} is on or before the first date {dates[0]:%Y-%m-%d}: "
            "nothing to fit before it"
        )
    if start > dates[-1]:
        raise DateRangeError(
            f"start {start:%Y-%m-%d} is after the last date {dates[-1]:%Y-%m-%d}: nothing to score"
        )
    if window != EXPANDING and window < min_fit_dates:
        raise InsufficientDataError(
            f"window of {window} dates is too short: a fit needs at least {min_fit_dates}"
        )
    scored = dates[dates >= start]
    first_in_period = ~scored.to_period(EVERY[every]).duplicated()
    refit_positions = dates.get_indexer(scored[first_in_period])
    needed = min_fit_dates if window == EXPANDING else window
    if refit_positions[0] < needed:
        raise InsufficientDataError(
            f"window too short: start {start:%Y-%m-%d} leaves {refit_positions[0]} dates before "
            f"the first refit ({dates[refit_positions[0]]:%Y-%m-%d}); "
            + (
                f"a fit needs at least {min_fit_dates}"
                if window == EXPANDING
                else f"the window needs {window}"
            )
        )
    ends = [*(refit_positions[1:] - 1), len(dates) - 1]
    refits = []
    for position, end in zip(refit_positions, ends, strict=True):
        first = 0 if window == EXPANDING else position - window
        refits.append(
            Refit(
                refit_date=dates[position],
                fit_start=dates[first],
                score_end=dates[end],
                n_fit_dates=int(position - first),
                n_scored_dates=int(end - position + 1),
            )
        )
    return refits
