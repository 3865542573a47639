"""Market events found in price series: breakouts to new all-time highs after a base."""

from __future__ import annotations

import pandas as pd

from regime_model.data.validation import check_series


def find_breakouts(prices: pd.Series, min_base_days: int = 365) -> pd.DataFrame:
    """Closes above every earlier close, when the previous high is ``min_base_days`` or
    more calendar days old (a breakout from a long base, not a run of new highs).

    ``prices``: closes indexed by date (positive, sorted; checked). Returns one row per
    breakout: date, close, previous_high, previous_high_date, base_days. Uses only data up
    to each date.
    """
    if min_base_days < 1:
        raise ValueError("min_base_days must be at least 1")
    prices = check_series(prices, "breakout prices", positive=True)
    previous_high = prices.cummax().shift(1)
    is_new_high = prices > previous_high
    dates = pd.Series(prices.index, index=prices.index)
    high_date = dates.where(is_new_high | previous_high.isna()).ffill().shift(1)
    base_days = (dates - high_date).dt.days
    breakout = is_new_high & (base_days >= min_base_days)
    return pd.DataFrame(
        {
            "date": prices.index[breakout],
            "close": prices[breakout].to_numpy(),
            "previous_high": previous_high[breakout].to_numpy(),
            "previous_high_date": high_date[breakout].to_numpy(),
            "base_days": base_days[breakout].astype(int).to_numpy(),
        }
    )
