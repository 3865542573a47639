"""The synthetic market: reproducible, sticky, fat-tailed crypto, exact lead-lag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regime_model.data.features import build_features
from regime_model.data.synthetic import equity_trading_days, simulate_market
from regime_model.data.universe import load_universe


@pytest.fixture(scope="module")
def market():
    return simulate_market(n_regimes=2, seed=11, crypto_lag_days=10)


def test_same_seed_same_data_other_seed_other_data(market):
    again = simulate_market(n_regimes=2, seed=11, crypto_lag_days=10)
    other = simulate_market(n_regimes=2, seed=12, crypto_lag_days=10)
    pd.testing.assert_series_equal(market.series["btc"], again.series["btc"])
    pd.testing.assert_series_equal(market.regimes, again.regimes)
    assert not np.allclose(market.series["btc"], other.series["btc"])


def test_crypto_regime_follows_equity_with_the_lag(market):
    lag = market.crypto_lag_days
    np.testing.assert_array_equal(
        market.crypto_regimes.to_numpy()[lag:], market.regimes.to_numpy()[:-lag]
    )


def test_regime_durations_match_transition_matrix(market):
    path = market.regimes.to_numpy()
    stays = (path[1:] == path[:-1]).mean()
    # 2,900 daily transitions; the binomial standard error of the stay share is ~0.0023.
    assert stays == pytest.approx(market.transition_matrix[0, 0], abs=0.008)
    assert set(np.unique(path)) == {0, 1}


def test_equity_calendar_and_crypto_every_day(market):
    iwm, btc = market.series["iwm"], market.series["btc"]
    assert (iwm.index.day_of_week < 5).all()
    assert pd.Timestamp("2019-12-25") not in iwm.index and pd.Timestamp("2019-12-25") in btc.index
    assert len(btc) == len(market.regimes)
    days = pd.date_range("2023-07-01", "2023-07-10")  # July 4th 2023 is a Tuesday
    assert list(equity_trading_days(days).day) == [3, 5, 6, 7, 10]


def test_emissions_separate_regimes_and_crypto_is_fat_tailed(market):
    features = build_features(load_universe(), market.source(), "daily").frame
    truth = market.truth_on(features.index)
    means = features.groupby(truth["crypto_regime"])["btc_return"].mean()
    assert means[1] > means[0] + 0.3  # percent per day; each mean's s.e. is ~0.1
    vol = features.groupby(truth["regime"])["iwm_return"].std()
    assert vol[0] > 1.8 * vol[1]
    risk_on_btc = features["btc_return"][truth["crypto_regime"] == 1].dropna()
    assert stats.kurtosis(risk_on_btc) > 1.0  # Student-t(4) innovations, not Gaussian


def test_more_regimes_interpolate(market):
    three = simulate_market(n_regimes=3, seed=5)
    assert three.n_regimes == 3 and set(np.unique(three.regimes)) == {0, 1, 2}
    with pytest.raises(ValueError, match="at least 2"):
        simulate_market(n_regimes=1)
