"""Calendar alignment, checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regime_model.data.calendar import (
    align_to_calendar,
    build_grid,
    coarse_observations,
    period_closings,
    period_openings,
    week_ending_friday,
)
from regime_model.data.features import build_features
from regime_model.data.sources import FrameSource
from regime_model.data.universe import load_universe
from tests.conftest import write_universe

# Thursday 2024-07-04 (Independence Day) is an equity holiday; 2024-03-29 is Good Friday.
EQUITY_DAYS = pd.DatetimeIndex(
    ["2024-03-27", "2024-03-28", "2024-04-01", "2024-07-01", "2024-07-02", "2024-07-03",
     "2024-07-05", "2024-07-08", "2024-07-09"]
)  # fmt: skip
CRYPTO_DAYS = pd.date_range("2024-03-25", "2024-07-10", freq="D")

# The hand-made equity calendar skips April to June on purpose, to keep the example
# short; its builds take the calendar as it is (bridge_gaps=True). How a hole in real
# data is kept missing is in test_input_validation.py.
UNIVERSE = """
    [universe]
    name = "hand"
    calendar_series = "equity_return"

    [[series]]
    name = "equity_return"
    group = "equity"
    transform = "log_return"
    calendar = "equity"
    synthetic = "equity"

    [[series]]
    name = "coin_return"
    group = "crypto"
    transform = "log_return"
    calendar = "crypto"
    synthetic = "coin"

    [[series]]
    name = "balance_sheet"
    group = "flows"
    transform = "level"
    calendar = "release"
    release_lag_days = 2
    max_staleness_days = 9
    synthetic = "assets"
"""


@pytest.fixture
def hand_source() -> FrameSource:
    equity = pd.Series(np.arange(1.0, len(EQUITY_DAYS) + 1) * 10, index=EQUITY_DAYS)
    coin = pd.Series(np.exp(np.arange(len(CRYPTO_DAYS)) * 0.01) * 100, index=CRYPTO_DAYS)
    wednesdays = pd.DatetimeIndex(["2024-03-20", "2024-03-27", "2024-06-26", "2024-07-03"])
    assets = pd.Series([1.0, 2.0, 3.0, 4.0], index=wednesdays)
    return FrameSource({"equity": equity, "coin": coin, "assets": assets})


def _coin(source: FrameSource, day: str) -> float:
    return source.load(["coin"])["coin"][pd.Timestamp(day)]


def test_daily_crypto_return_spans_weekend_and_holiday(tmp_path, hand_source):
    universe = load_universe(write_universe(tmp_path / "u.toml", UNIVERSE))
    frame = build_features(
        universe, hand_source, "daily", min_observations=1, bridge_gaps=True
    ).frame
    assert list(frame.index) == list(EQUITY_DAYS)
    assert np.isnan(frame.loc["2024-03-27", "coin_return"])  # no earlier grid date
    # Monday 2024-07-08: crypto's Saturday, Sunday and Monday returns arrive together.
    expected = 100 * np.log(_coin(hand_source, "2024-07-08") / _coin(hand_source, "2024-07-05"))
    assert frame.loc["2024-07-08", "coin_return"] == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(3.0, rel=1e-9)  # three calendar days of 1% log growth
    # Friday 2024-07-05 after the Thursday holiday: two crypto days, one equity step.
    assert frame.loc["2024-07-05", "coin_return"] == pytest.approx(2.0, rel=1e-9)
    assert frame.loc["2024-07-05", "equity_return"] == pytest.approx(100 * np.log(70 / 60))
    # Easter Monday after Good Friday: four crypto days (Fri..Mon).
    assert frame.loc["2024-04-01", "coin_return"] == pytest.approx(4.0, rel=1e-9)


def test_release_lag_and_staleness_on_daily_grid(tmp_path, hand_source):
    universe = load_universe(write_universe(tmp_path / "u.toml", UNIVERSE))
    frame = build_features(
        universe, hand_source, "daily", min_observations=1, bridge_gaps=True
    ).frame
    sheet = frame["balance_sheet"]
    # Wednesday 2024-07-03's level is published two days later, on Friday.
    assert sheet["2024-07-03"] == 3.0  # last week's (06-26) value, released 06-28
    assert sheet["2024-07-05"] == 4.0
    # 2024-03-27's value is known from 03-29 on; 03-28 still shows 03-20's.
    assert sheet["2024-03-28"] == 1.0
    assert sheet["2024-04-01"] == 2.0
    # 2024-07-01: the last release (06-26, known 06-28) is 3 days old -> still valid;
    # nothing is carried for longer than max_staleness_days (9): the 03-27 value is not
    # used in July.
    assert sheet["2024-07-01"] == 3.0


def test_weekly_uses_last_close_of_week_ending_friday(tmp_path, hand_source):
    universe = load_universe(write_universe(tmp_path / "u.toml", UNIVERSE))
    frame = build_features(
        universe, hand_source, "weekly", min_observations=1, bridge_gaps=True
    ).frame
    # Week ending Good Friday 2024-03-29: equity's last close is Thursday 03-28 (20),
    # the week after ends 04-05 with Monday 04-01's close (30).
    assert frame.loc["2024-04-05", "equity_return"] == pytest.approx(100 * np.log(30 / 20))
    # Crypto in weekly mode: Friday-to-Friday close, seven 1% days.
    assert frame.loc["2024-04-05", "coin_return"] == pytest.approx(7.0, rel=1e-9)
    # The week ending 2024-07-12 is after the last equity date (07-09): not emitted.
    assert frame.index[-1] == pd.Timestamp("2024-07-05")


def test_week_ending_friday():
    days = pd.DatetimeIndex(["2024-07-05", "2024-07-06", "2024-07-08", "2024-07-12"])
    assert list(week_ending_friday(days).strftime("%m-%d")) == ["07-05", "07-12", "07-12", "07-12"]


def test_align_never_uses_future_observations():
    series = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2024-01-02", "2024-01-10"]))
    grid = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-05", "2024-01-09", "2024-01-10"])
    aligned = align_to_calendar(series, grid, "daily", max_staleness_days=3)
    assert np.isnan(aligned.iloc[0])  # before the first observation: missing, not back-filled
    assert list(aligned.iloc[1:3]) == [1.0, 1.0]
    assert np.isnan(aligned.iloc[3])  # 7 days stale > 3 allowed
    assert aligned.iloc[4] == 2.0


def test_build_grid_prefers_equity_days():
    equity = pd.DatetimeIndex(["2024-01-02", "2024-01-03"])
    crypto = pd.date_range("2024-01-01", "2024-01-07")
    grid = build_grid({"equity": [equity], "crypto": [crypto]}, "daily")
    assert list(grid) == list(equity)
    assert list(build_grid({"crypto": [crypto]}, "daily")) == list(crypto)
    with pytest.raises(ValueError, match="unknown frequency"):
        build_grid({"crypto": [crypto]}, "monthly")


def test_periods_open_on_the_first_fine_date_of_each_month():
    dates = pd.date_range("2024-01-05", periods=10, freq="W-FRI")  # Jan 5 .. Mar 8
    opens = period_openings(dates, "M")
    assert list(dates[opens].strftime("%Y-%m-%d")) == ["2024-01-05", "2024-02-02", "2024-03-01"]
    # January and February end within the sample; March is unfinished (no observation).
    assert list(period_closings(opens)) == [3, 7]
    with pytest.raises(ValueError, match="strictly increasing"):
        period_openings(dates[::-1])
    with pytest.raises(ValueError, match="M, Q, W"):
        period_openings(dates, "D")


def test_coarse_observations_sit_on_closing_dates_and_ignore_what_came_later():
    """A coarse column keeps its value only on each ended month's last Friday; a build on
    a shorter sample gives the same coarse observations for every month that ended in it
    (nothing after a month's last fine date enters its observation), and the unfinished
    last month has none."""
    dates = pd.date_range("2024-01-05", periods=14, freq="W-FRI")  # Jan 5 .. Apr 5
    frame = pd.DataFrame(
        {"ret": np.arange(14.0), "liquidity": 100.0 + np.arange(14.0)}, index=dates
    )
    placed = coarse_observations(frame, ["liquidity"], "M")
    kept = placed["liquidity"].dropna()
    assert list(kept.index.strftime("%m-%d")) == ["01-26", "02-23", "03-29"]
    np.testing.assert_array_equal(kept.to_numpy(), frame["liquidity"][kept.index].to_numpy())
    pd.testing.assert_series_equal(placed["ret"], frame["ret"])  # fine columns untouched
    shorter = coarse_observations(frame.iloc[:9], ["liquidity"], "M")  # to Mar 1
    pd.testing.assert_series_equal(
        shorter["liquidity"].dropna(), kept[kept.index < dates[8]], check_freq=False
    )
    with pytest.raises(ValueError, match="coarse columns nope are not among the features"):
        coarse_observations(frame, ["nope"])
