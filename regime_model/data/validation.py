"""Checks that every raw series passes before any transform sees it.

One place decides what "bad input" means, so the CSV, Yahoo and synthetic sources all
fail the same way with the same kind of message: ``<where>: column '<c>': <problem> on
<date>``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regime_model.errors import (
    ConstantFeatureError,
    DateRangeError,
    DuplicateDateError,
    EmptySeriesError,
    InsufficientDataError,
    MalformedFileError,
    NonPositivePriceError,
    UnsortedDatesError,
)


def _day(timestamp: pd.Timestamp) -> str:
    return pd.Timestamp(timestamp).strftime("%Y-%m-%d")


def parse_date(value: str | pd.Timestamp | None, what: str = "date") -> pd.Timestamp | None:
    """Parse a user-supplied ISO date; ``None`` passes through.

    Raises :class:`DateRangeError` naming ``what`` when the text is not a date.
    """
    if value is None:
        return None
    try:
        parsed = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DateRangeError(f"{what}: cannot parse {value!r} as a date (use YYYY-MM-DD)") from exc
    if pd.isna(parsed):
        raise DateRangeError(f"{what}: cannot parse {value!r} as a date (use YYYY-MM-DD)")
    return parsed.tz_localize(None).normalize() if parsed.tzinfo else parsed.normalize()


def check_date_range(start: pd.Timestamp | None, end: pd.Timestamp | None) -> None:
    """Raise :class:`DateRangeError` when ``start`` is after ``end``."""
    if start is not None and end is not None and start > end:
        raise DateRangeError(f"start date {_day(start)} is after end date {_day(end)}")


# Dates outside these are a typo or a unit error (epoch seconds read as days), not market
# history; simulations for calibration run a few years past today.
EARLIEST_DATE = pd.Timestamp("1900-01-01")
LATEST_DATE = pd.Timestamp("2100-12-31")


def check_dates(index: pd.Index, where: str) -> pd.DatetimeIndex:
    """Check a date index: parseable, no duplicates, ascending. Returns it as DatetimeIndex."""
    if not isinstance(index, pd.DatetimeIndex) and pd.api.types.is_numeric_dtype(index):
        # Numbers would be read as nanoseconds since 1970 (or, later, as errors): refuse.
        raise MalformedFileError(f"{where}: the dates are numbers ({index[0]!r}, ...), not dates")
    if not isinstance(index, pd.DatetimeIndex):
        parsed = pd.to_datetime(pd.Series(index, dtype="object"), errors="coerce", format="ISO8601")
        bad = parsed.isna() & pd.Series(index, dtype="object").notna()
        if bad.any() or parsed.isna().any():
            position = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise MalformedFileError(
                f"{where}: unparseable date {index[position]!r} in row {position + 1}"
            )
        index = pd.DatetimeIndex(parsed)
    if index.tz is not None:
        index = index.tz_localize(None)
    if len(index):
        outside = (index < EARLIEST_DATE) | (index > LATEST_DATE)
        if outside.any():
            raise DateRangeError(
                f"{where}: date {_day(index[outside][0])} is outside {EARLIEST_DATE:%Y-%m-%d} "
                f"to {LATEST_DATE:%Y-%m-%d}"
            )
    duplicated = index.duplicated()
    if duplicated.any():
        raise DuplicateDateError(f"{where}: duplicate date {_day(index[duplicated][0])}")
    if not index.is_monotonic_increasing:
        position = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
        raise UnsortedDatesError(
            f"{where}: dates not ascending: {_day(index[position])} follows "
            f"{_day(index[position - 1])}"
        )
    return index


def check_series(
    series: pd.Series,
    where: str,
    *,
    positive: bool = False,
) -> pd.Series:
    """Validate one raw series and return it with a clean ``DatetimeIndex``.

    ``where`` names the origin (``"iwm.csv: column 'close'"`` or ``"yahoo IWM close"``).
    ``positive`` demands strictly positive values, as anything taken in logs must be.
    Missing values are allowed (they stay missing); an all-missing series is an error.
    """
    index = check_dates(series.index, where)
    values = pd.to_numeric(series, errors="coerce")
    non_numeric = values.isna() & series.notna()
    if non_numeric.any():
        first = non_numeric.to_numpy().nonzero()[0][0]
        raise MalformedFileError(
            f"{where}: non-numeric value {series.iloc[first]!r} on {_day(index[first])}"
        )
    values = pd.Series(values.to_numpy(dtype=float), index=index, name=series.name)
    if values.notna().sum() == 0:
        raise EmptySeriesError(f"{where}: no values (all missing)")
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        raise MalformedFileError(f"{where}: infinite value on {_day(index[infinite][0])}")
    if positive:
        non_positive = values <= 0
        if non_positive.any():
            date = values.index[non_positive.to_numpy()][0]
            raise NonPositivePriceError(
                f"{where}: non-positive value {values[date]:g} on {_day(date)} "
                "(prices and levels taken in logs must be > 0)"
            )
    return values


def check_feature_frame(features: pd.DataFrame, min_observations: int) -> None:
    """Every feature column must vary and have at least ``min_observations`` values."""
    for column in features.columns:
        values = features[column].dropna()
        if values.empty:
            raise EmptySeriesError(f"feature '{column}': no values in the requested date range")
        if len(values) < min_observations:
            raise InsufficientDataError(
                f"feature '{column}': only {len(values)} observations between "
                f"{_day(values.index[0])} and {_day(values.index[-1])}, "
                f"at least {min_observations} needed"
            )
        if values.nunique() == 1:
            raise ConstantFeatureError(
                f"feature '{column}': constant value {values.iloc[0]:g} from "
                f"{_day(values.index[0])} to {_day(values.index[-1])}"
            )
