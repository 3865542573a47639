"""Feature building: no look-ahead, transforms, splicing, masks and round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regime_model.data.features import build_features, read_features, splice_levels
from regime_model.data.sources import CsvDirectorySource, FrameSource
from regime_model.data.synthetic import simulate_market
from regime_model.data.transforms import standardize
from regime_model.data.universe import load_universe


@pytest.fixture(scope="module")
def market():
    return simulate_market(seed=3, start="2017-01-01", end="2020-12-31")


def _truncated(market, cut: pd.Timestamp) -> FrameSource:
    return FrameSource({name: s[s.index <= cut] for name, s in market.series.items()})


@pytest.mark.parametrize("freq", ["daily", "weekly"])
def test_no_look_ahead(market, freq):
    """A feature at date t is identical whether or not data after t exist."""
    universe = load_universe()
    full = build_features(universe, market.source(), freq).frame
    for cut in pd.to_datetime(["2019-04-17", "2019-11-06", "2020-06-24"]):
        partial = build_features(universe, _truncated(market, cut), freq).frame
        assert partial.index[-1] <= cut
        expected = full.loc[full.index <= cut, partial.columns]
        # Every column, including rolling volatility and expanding z-scores.
        pd.testing.assert_frame_equal(partial, expected, check_freq=False, rtol=1e-12)


def test_look_ahead_check_would_catch_a_centred_window(market):
    """The comparison above fails for a transform that peeks ahead (guards the guard)."""
    values = market.series["iwm"]
    centred = values.rolling(5, center=True).mean()
    cut = pd.Timestamp("2019-03-01")
    partial = values[values.index <= cut].rolling(5, center=True).mean()
    assert not np.allclose(partial.iloc[-1], centred[cut], equal_nan=False)


def test_missing_values_stay_missing_and_late_starts_are_masked(market):
    features = build_features(load_universe(), market.source(), "daily")
    altcoin = features.frame["altcoin_return"]
    sol_start = market.series["sol"].index[0]
    assert altcoin[altcoin.index <= sol_start].isna().all()
    assert altcoin[altcoin.index > sol_start].notna().all()
    mask = features.mask
    assert mask.shape == features.frame.shape
    assert (mask == features.frame.notna().to_numpy()).all()


def test_expanding_standardisation_uses_only_the_past():
    values = pd.Series(np.arange(10.0) ** 2)
    z = standardize(values, "expanding", min_periods=3)
    assert z.iloc[:2].isna().all()
    for t in range(2, 10):
        past = values.iloc[: t + 1]
        assert z.iloc[t] == pytest.approx((values.iloc[t] - past.mean()) / past.std())
    trailing = standardize(values, "trailing", window=4, min_periods=4)
    past = values.iloc[6:10]
    assert trailing.iloc[9] == pytest.approx((values.iloc[9] - past.mean()) / past.std())


def test_splice_uses_older_vendor_only_before_preferred_starts():
    older = pd.Series([10.0, 11.0, 12.0, 13.0], index=pd.date_range("2020-01-01", periods=4))
    preferred = pd.Series([24.0, 26.0], index=pd.date_range("2020-01-03", periods=2))
    spliced = splice_levels([preferred, older], "x")
    # Rescaled by 24 / 12 on the first common date, so returns are the older vendor's.
    assert list(spliced) == [20.0, 22.0, 24.0, 26.0]


def test_transforms_on_synthetic_inputs(market):
    frame = build_features(load_universe(), market.source(), "daily").frame
    day = pd.Timestamp("2019-05-15")
    previous = frame.index[frame.index.get_loc(day) - 1]
    advancing, declining = market.series["advancing"], market.series["declining"]
    net = (advancing - declining) / (advancing + declining)
    assert frame.loc[day, "ad_line_change"] == pytest.approx(100 * net[day])
    highs, lows = market.series["new_highs"], market.series["new_lows"]
    raw_net_highs = (highs - lows)[highs.index <= day]
    z = (raw_net_highs.iloc[-1] - raw_net_highs.mean()) / raw_net_highs.std()
    assert frame.loc[day, "net_new_highs"] == pytest.approx(z)
    shares = market.series["iwm_shares"]
    assert frame.loc[day, "iwm_flow"] == pytest.approx(100 * (shares[day] / shares[previous] - 1))
    iwm = market.series["iwm"]
    returns = np.log(iwm).diff()[iwm.index <= day].iloc[-21:]
    assert frame.loc[day, "iwm_volatility"] == pytest.approx(100 * returns.std() * np.sqrt(252))


def test_net_liquidity_uses_published_values(market):
    frame = build_features(load_universe(), market.source(), "daily").frame
    assets = market.series["fed_assets"]
    repo = market.series["reverse_repo"] * 1000.0
    friday = pd.Timestamp("2019-05-17")  # Wednesday 05-15's balance sheet known from Friday
    thursday = pd.Timestamp("2019-05-16")
    net_friday = assets[pd.Timestamp("2019-05-15")] - repo[friday]
    net_thursday = assets[pd.Timestamp("2019-05-08")] - repo[thursday]
    expected = 100 * (net_friday / net_thursday - 1)
    assert frame.loc[friday, "net_liquidity_change"] == pytest.approx(expected)


def test_save_and_read_round_trip(tmp_path, market):
    features = build_features(load_universe(), market.source(), "weekly")
    path = features.save(tmp_path / "features.csv")
    loaded = read_features(path)
    assert loaded.freq == "weekly" and loaded.source == "synthetic"
    assert loaded.groups == features.groups
    pd.testing.assert_frame_equal(loaded.frame, features.frame, check_freq=False, rtol=1e-9)
    assert not list(tmp_path.glob(".*.tmp"))


def test_read_features_from_bare_csv_gets_groups_from_argument(tmp_path):
    path = tmp_path / "bare.csv"
    path.write_text("date,a,b\n2024-01-05,1,2\n2024-01-12,,3\n2024-01-19,2,4\n")
    features = read_features(path, groups={"a": "equity"})
    assert features.groups == {"a": "equity", "b": "unknown"}
    assert features.freq == "weekly"
    assert np.isnan(features.frame.loc["2024-01-12", "a"])


def test_csv_build_with_small_directory(csv_dir, simple_universe):
    universe = load_universe(simple_universe)
    daily = build_features(universe, CsvDirectorySource(csv_dir), "daily").frame
    assert daily.index.day_of_week.max() < 5
    weekly = build_features(universe, CsvDirectorySource(csv_dir), "weekly").frame
    assert (weekly.index.day_of_week == 4).all()
    # Weekly log returns are sums of the daily ones within each week.
    week = weekly.index[10]
    days = daily.loc[(daily.index > weekly.index[9]) & (daily.index <= week), "equity_return"]
    assert weekly.loc[week, "equity_return"] == pytest.approx(days.sum())


def test_build_places_coarse_columns_on_month_ends_and_keeps_them_in_the_metadata(tmp_path, capsys):
    """``regime data build --coarse-columns``: the coarse feature is present only on the
    last Friday of each ended month, where it equals the plain build's value (so the
    release lags the plain build respects carry over); every other column is the plain
    build's; the file's metadata says which columns are coarse, and read_features reads
    it back. An unknown coarse column is a one-line error, exit 2, and no file."""
    from regime_model.cli import main

    common = ["data", "build", "--source", "synthetic", "--freq", "weekly", "--seed", "3"]
    common += ["--end", "2021-09-30"]
    assert main([*common, "--out", str(tmp_path / "plain.csv")]) == 0
    coarse = ["--coarse-columns", "net_liquidity_change", "--out", str(tmp_path / "two.csv")]
    assert main([*common, *coarse]) == 0
    plain = read_features(tmp_path / "plain.csv")
    two_scale = read_features(tmp_path / "two.csv")
    assert two_scale.coarse_columns == ["net_liquidity_change"]
    assert two_scale.coarse_freq == "M" and plain.coarse_columns == []
    placed = two_scale.frame["net_liquidity_change"].dropna()
    dates = two_scale.frame.index
    month = dates.to_period("M")
    last_of_month = np.r_[month[1:] != month[:-1], False]  # the last month is unfinished
    assert list(placed.index) == list(
        dates[last_of_month & plain.frame["net_liquidity_change"].notna().to_numpy()]
    )
    np.testing.assert_array_equal(placed, plain.frame.loc[placed.index, "net_liquidity_change"])
    others = [column for column in plain.frame.columns if column != "net_liquidity_change"]
    pd.testing.assert_frame_equal(two_scale.frame[others], plain.frame[others])
    capsys.readouterr()
    bad = ["--coarse-columns", "nope", "--out", str(tmp_path / "bad.csv")]
    assert main([*common, *bad]) == 2
    error = capsys.readouterr().err
    assert "coarse columns nope are not among the features" in error and error.count("\n") == 1
    assert not (tmp_path / "bad.csv").exists()
